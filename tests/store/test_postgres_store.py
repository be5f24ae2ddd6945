"""What only the PostgreSQL backend has: the database and its migrations under
concurrent servers, its URLs, and what a pool of concurrent connections adds (row
locks, aborted statements, timeouts, connections dropped by the server, the order
in which concurrent transactions' changes become visible).

The contract every backend passes is test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from stigmer.errors import AlreadyExists, Internal, InvalidArgument, Unavailable
from stigmer.store.base import Record, Store
from stigmer.store.postgres import PostgresStore
from stigmer.store.postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS
from stigmer.store.urls import store_from_url
from tests.store.calls import (
    Run,
    changes_after,
    count,
    fetch,
    insert_all,
    make_full_record,
    make_record,
    update,
)

# --- the database and its migrations -------------------------------------------------------


@asynccontextmanager
async def opened_postgres(url: str, **options: Any) -> AsyncIterator[PostgresStore]:
    """A PostgresStore with non-default options, open for the block."""
    store = PostgresStore(url, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def fetch_for_update(store: Store, record: Record) -> Record | None:
    """A get in a write transaction, which locks the row on PostgreSQL."""
    async with store.transaction() as tx:
        return await tx.get(record.kind, record.id)


def _postgres_migration_rows(url: str) -> list[tuple[int, int]]:
    sql = "SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version"
    with psycopg.connect(url) as connection:
        return [(int(version), int(n)) for version, n in connection.execute(sql).fetchall()]


def _postgres_database_from_the_future(url: str, run: Run) -> int:
    """Migrates the database, then records a schema version newer than this code knows."""
    store = PostgresStore(url)
    run(store.open())
    run(store.close())
    newer = POSTGRES_MIGRATIONS[-1][0] + 1
    with psycopg.connect(url) as connection:
        connection.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (newer,))
    return newer


def test_reopened_postgres_database_keeps_data_and_migrates_once(
    postgres_url: str, run: Run
) -> None:
    record = make_full_record("researcher", "first")

    async def reopen(insert: bool) -> Record | None:
        async with opened_postgres(postgres_url) as store:
            if insert:
                await insert_all(store, record)
            return await fetch(store, record)

    assert [run(reopen(insert=n == 0)) for n in range(3)] == [record, record, record]
    assert _postgres_migration_rows(postgres_url) == [(v, 1) for v, _ in POSTGRES_MIGRATIONS]


def test_servers_opening_a_new_postgres_database_together_migrate_it_once(
    postgres_url: str, run: Run
) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(8)]

    async def open_all_then_use_each() -> list[int]:
        await asyncio.gather(*(store.open() for store in stores))
        try:
            for n, store in enumerate(stores):
                await insert_all(store, make_record(f"from-server-{n}"))
            return [await count(store) for store in stores]
        finally:
            await asyncio.gather(*(store.close() for store in stores))

    assert run(open_all_then_use_each()) == [8] * 8
    assert _postgres_migration_rows(postgres_url) == [(v, 1) for v, _ in POSTGRES_MIGRATIONS]


def test_postgres_database_with_newer_schema_is_refused_and_the_store_stays_closed(
    postgres_url: str, run: Run
) -> None:
    newer = _postgres_database_from_the_future(postgres_url, run)
    refused = PostgresStore(postgres_url)

    with pytest.raises(Unavailable, match="newer"):
        run(refused.open())
    try:
        with pytest.raises(Unavailable, match="closed"):
            run(count(refused))
    finally:
        run(refused.close())

    assert _postgres_migration_rows(postgres_url)[-1] == (newer, 1)


def test_unreachable_postgres_is_unavailable_naming_host_and_port(run: Run) -> None:
    with socket.socket() as probe:  # a port on which nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = PostgresStore(f"postgresql://stigmer:secret@127.0.0.1:{port}/stigmer")

    with pytest.raises(Unavailable, match=rf"127\.0\.0\.1:{port}/stigmer") as raised:
        run(store.open())

    assert "secret" not in str(raised.value)
    with pytest.raises(Unavailable, match="closed"):
        run(count(store))


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_store_from_url_selects_postgres_and_its_url_round_trips_without_password(
    scheme: str,
) -> None:
    url = f"{scheme}://stigmer:s3cret@db.example:6543/agents?sslmode=disable&password=s3cret"

    selected = store_from_url(url)

    assert isinstance(selected, PostgresStore)
    assert selected.url == f"{scheme}://stigmer@db.example:6543/agents?sslmode=disable"
    reopened = store_from_url(selected.url)
    assert isinstance(reopened, PostgresStore)
    assert reopened.url == selected.url


def test_malformed_postgres_url_is_invalid_argument_on_the_store_field() -> None:
    with pytest.raises(InvalidArgument) as raised:
        store_from_url("postgres://db.example/agents?no_such_parameter=1")

    assert raised.value.facts["field"] == "store"


def test_already_exists_inside_a_postgres_transaction_leaves_it_usable(
    postgres_url: str, run: Run
) -> None:
    # PostgreSQL aborts a transaction on any failed statement, yet the domain
    # catches AlreadyExists and goes on in the same transaction.
    kept, renamed, added = make_record("kept"), make_record("renamed"), make_record("added")

    async def scenario() -> list[str]:
        async with opened_postgres(postgres_url) as store:
            await insert_all(store, kept, renamed)
            existing_ids = []
            async with store.transaction() as tx:
                # The slug is taken; the id is taken; a rename onto the taken slug.
                attempts: list[Callable[[], Awaitable[None]]] = [
                    lambda: tx.insert(make_record("kept")),
                    lambda: tx.insert(make_record("fresh", id=kept.id)),
                    lambda: tx.update(replace(renamed, slug="kept", version=2), 1),
                ]
                for attempt in attempts:
                    with pytest.raises(AlreadyExists) as raised:
                        await attempt()
                    existing_ids.append(raised.value.existing_id)
                await tx.insert(added)
            assert await fetch(store, added) == added
            assert await fetch(store, renamed) == renamed
            return existing_ids

    assert run(scenario()) == [kept.id, kept.id, kept.id]


def test_postgres_transaction_that_goes_on_after_a_failed_statement_commits_nothing(
    postgres_url: str, run: Run
) -> None:
    # A write in a read transaction fails and aborts it. A caller that swallows
    # the error and goes on is told so at every later statement and at the end,
    # where PostgreSQL would silently turn the COMMIT into a ROLLBACK.
    record = make_record("read-only")

    async def scenario() -> int:
        async with opened_postgres(postgres_url) as store:
            with pytest.raises(Internal, match="nothing was committed"):
                async with store.transaction(write=False) as tx:
                    with pytest.raises(Internal, match="read-only"):
                        await tx.insert(record)
                    with pytest.raises(Internal, match="aborted"):
                        await tx.count("agent")
            return await count(store)  # the connection went back to the pool usable

    assert run(scenario()) == 0


def test_postgres_read_modify_write_of_one_record_waits_instead_of_conflicting(
    postgres_url: str, run: Run
) -> None:
    # A write transaction's get locks the row: concurrent read-modify-writes
    # run one after the other, as on SQLite, and every one succeeds.
    record = make_record("counter")

    async def increment(store: Store) -> None:
        async with store.transaction() as tx:
            current = await tx.get(record.kind, record.id)
            assert current is not None
            await asyncio.sleep(0.005)  # let the others read meanwhile
            await tx.update(replace(current, version=current.version + 1), current.version)

    async def scenario() -> Record | None:
        async with opened_postgres(postgres_url, max_connections=10) as store:
            await insert_all(store, record)
            await asyncio.gather(*(increment(store) for _ in range(10)))
            return await fetch(store, record)

    assert run(scenario()) == replace(record, version=11)


@asynccontextmanager
async def held_by_another_task(store: Store, record: Record | None = None) -> AsyncIterator[None]:
    """For the block, another task holds a write transaction (so a pooled
    connection) and, given a record, that record's row lock.

    The holder is a sibling task: a task started inside an open transaction
    would wait for that transaction to end before beginning its own."""
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with store.transaction() as tx:
            if record is not None:
                await tx.get(record.kind, record.id)
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await held.wait()
    try:
        yield
    finally:
        release.set()
        await holder


def test_postgres_row_held_longer_than_lock_timeout_is_unavailable(
    postgres_url: str, run: Run
) -> None:
    record = make_record("held")

    async def scenario() -> None:
        async with opened_postgres(postgres_url, lock_timeout=0.2) as store:
            await insert_all(store, record)
            async with held_by_another_task(store, record):
                with pytest.raises(Unavailable, match="busy"):
                    await fetch_for_update(store, record)

    run(scenario())


def test_postgres_pool_exhausted_longer_than_wait_timeout_is_unavailable(
    postgres_url: str, run: Run
) -> None:
    async def scenario() -> int:
        async with opened_postgres(postgres_url, max_connections=1, wait_timeout=0.2) as store:
            async with held_by_another_task(store):
                with pytest.raises(Unavailable, match="busy"):
                    await count(store)
            return await count(store)  # the connection is free again

    assert run(scenario()) == 0


def test_postgres_transaction_cancelled_while_waiting_for_a_row_frees_its_connection(
    postgres_url: str, run: Run
) -> None:
    record = make_record("contended")

    async def scenario() -> Record | None:
        async with opened_postgres(postgres_url, max_connections=2) as store:
            await insert_all(store, record)
            async with held_by_another_task(store, record):
                waiter = asyncio.create_task(fetch_for_update(store, record))
                await asyncio.sleep(0.2)  # the waiter's SELECT ... FOR UPDATE is blocked
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
            # Both connections are back in the pool and usable; the row is free.
            await asyncio.gather(update(store, replace(record, version=2), 1), count(store))
            return await fetch(store, record)

    assert run(asyncio.wait_for(scenario(), timeout=20)) == replace(record, version=2)


def test_postgres_connections_dropped_by_the_server_are_replaced_transparently(
    postgres_url: str, run: Run
) -> None:
    # A restart or an idle timeout kills pooled connections; their BEGIN
    # fails, and the store takes another connection instead of failing.
    record = make_record("after-restart")

    async def scenario() -> Record | None:
        async with opened_postgres(postgres_url, min_connections=3) as store:
            await count(store)
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            await insert_all(store, record)
            return await fetch(store, record)

    assert run(scenario()) == record


def test_postgres_change_of_a_transaction_that_commits_later_is_numbered_after_those_before(
    postgres_url: str, run: Run
) -> None:
    """A watcher that has read past a later-begun, earlier-committed write still
    sees the write that was begun first and committed last."""

    async def scenario() -> tuple[list[str], list[str]]:
        async with opened_postgres(postgres_url) as store:
            first_wrote = asyncio.Event()
            second_committed = asyncio.Event()

            async def slow_writer() -> None:
                async with store.transaction() as tx:
                    await tx.insert(make_record("begun-first"))
                    first_wrote.set()
                    await second_committed.wait()

            slow = asyncio.create_task(slow_writer())
            await first_wrote.wait()
            await insert_all(store, make_record("committed-first"))
            seen = await changes_after(store)
            second_committed.set()
            await slow
            later = await changes_after(store, seen[-1].sequence)
            return [c.record.slug for c in seen], [c.record.slug for c in later]

    assert run(scenario()) == (["committed-first"], ["begun-first"])
