"""What only the SQLite backend has: the file, its migrations, how store URLs and
paths select it, and how sqlite3's errors come out of a transaction.

The contract every backend passes is test_store_contract.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from stigmer.errors import Internal, InvalidArgument, Unavailable
from stigmer.store.base import Lease, Record
from stigmer.store.sqlite import SqliteStore
from stigmer.store.sqlite.schema import MIGRATIONS
from stigmer.store.urls import store_from_url
from tests.store.calls import Run, count, fetch, insert_all, make_record

# --- the file and its migrations -----------------------------------------------------------


def _migration_rows(path: Path) -> list[tuple[int, int]]:
    sql = "SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version"
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql).fetchall()


def _sqlite_file_from_the_future(path: Path, run: Run) -> int:
    """Creates a store file claiming a schema version newer than this code knows."""
    store = SqliteStore(path)
    run(store.open())
    run(store.close())
    newer = MIGRATIONS[-1][0] + 1
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("INSERT INTO schema_migrations VALUES (?, datetime('now'))", (newer,))
    return newer


def test_reopened_sqlite_file_keeps_data_and_migrates_once(tmp_path: Path, run: Run) -> None:
    path, record = tmp_path / "store.db", make_record("researcher")

    async def reopen(insert: bool) -> Record | None:
        store = SqliteStore(path)
        await store.open()
        try:
            if insert:
                await insert_all(store, record)
            return await fetch(store, record)
        finally:
            await store.close()

    assert [run(reopen(insert=n == 0)) for n in range(3)] == [record, record, record]
    assert _migration_rows(path) == [(version, 1) for version, _ in MIGRATIONS]


def test_sqlite_file_with_newer_schema_is_refused_as_unavailable(tmp_path: Path, run: Run) -> None:
    newer = _sqlite_file_from_the_future(tmp_path / "store.db", run)
    refused = SqliteStore(tmp_path / "store.db")

    with pytest.raises(Unavailable, match="newer"):
        run(refused.open())
    run(refused.close())

    assert _migration_rows(tmp_path / "store.db")[-1] == (newer, 1)


def test_sqlite_store_refused_at_open_stays_closed(tmp_path: Path, run: Run) -> None:
    _sqlite_file_from_the_future(tmp_path / "store.db", run)
    refused = SqliteStore(tmp_path / "store.db")
    with pytest.raises(Unavailable):
        run(refused.open())

    try:
        with pytest.raises(Unavailable, match="closed"):
            run(count(refused))
    finally:
        run(refused.close())


# --- store URLs: SQLite is what a URL selects unless it names another backend ---------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///abs/path/store.db", "/abs/path/store.db"),
        ("/abs/path/store.db", "/abs/path/store.db"),
        ("relative/store.db", "relative/store.db"),
        ("sqlite:relative/store.db", "relative/store.db"),
    ],
)
def test_store_from_url_selects_sqlite_for_sqlite_urls_and_paths(url: str, path: str) -> None:
    selected = store_from_url(url)

    assert isinstance(selected, SqliteStore)
    assert selected.path == Path(path)


@pytest.mark.parametrize("url", ["mysql://db/stigmer", "redis://localhost", "s3://bucket/x"])
def test_store_from_url_with_unknown_scheme_is_invalid_argument(url: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        store_from_url(url)

    assert raised.value.facts["field"] == "store"


def test_sqlite_store_url_selects_the_same_file_for_a_relative_path() -> None:
    reopened = store_from_url(SqliteStore(Path("relative/store.db")).url)

    assert isinstance(reopened, SqliteStore)
    assert reopened.path == Path("relative/store.db")


# --- sqlite3 errors inside a transaction ---------------------------------------------------


@contextmanager
def write_lock_held_by_another_process(path: Path) -> Iterator[None]:
    """For the block, another connection (as another process would) holds the write lock."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


def test_sqlite_write_transaction_while_another_process_writes_is_unavailable_busy(
    tmp_path: Path, run: Run
) -> None:
    store = SqliteStore(tmp_path / "store.db", busy_timeout_ms=50)
    run(store.open())
    try:
        with write_lock_held_by_another_process(store.path), pytest.raises(Unavailable) as raised:
            run(insert_all(store, make_record("blocked")))
        assert "busy" in raised.value.message
        assert run(count(store)) == 0
    finally:
        run(store.close())


def test_sqlite_write_statement_in_a_read_transaction_while_another_writes_is_unavailable(
    tmp_path: Path, run: Run
) -> None:
    # A read transaction begins without the write lock; its first write then
    # waits for it, and a timeout there is the same Unavailable as at BEGIN.
    store = SqliteStore(tmp_path / "store.db", busy_timeout_ms=50)
    record = make_record("after")

    async def scenario() -> int:
        async with store.transaction(write=False) as tx:
            with (
                write_lock_held_by_another_process(store.path),
                pytest.raises(Unavailable, match="busy"),
            ):
                await tx.put_lease(Lease("exec-1", "worker-a", 10.0))
            assert await tx.get_lease("exec-1") is None
        await insert_all(store, record)  # the connection is usable again
        return await count(store)

    run(store.open())
    try:
        assert run(scenario()) == 1
        assert run(fetch(store, record)) == record
    finally:
        run(store.close())


def test_sqlite_statement_failing_for_no_mapped_reason_is_internal_naming_the_store(
    tmp_path: Path, run: Run
) -> None:
    store = SqliteStore(tmp_path / "store.db")
    run(store.open())
    try:
        with closing(sqlite3.connect(store.path)) as other, other:
            other.execute("DROP TABLE leases")

        async def read_lease() -> Lease | None:
            async with store.transaction(write=False) as tx:
                return await tx.get_lease("exec-1")

        with pytest.raises(Internal) as raised:
            run(read_lease())
        assert str(store.path) in raised.value.message
        assert "no such table" in raised.value.message
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert run(count(store)) == 0  # the transaction was rolled back; the store goes on
    finally:
        run(store.close())
