"""The store contract: every backend in conftest.BACKENDS must pass this suite unchanged.

Tests take `store` (open, empty) and `run` (the test's event loop) and run inner
coroutines with `run(...)`. The section marked SQLite-specific tests the file itself.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import uuid
from collections.abc import Coroutine
from contextlib import closing
from dataclasses import replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from stigmer.errors import AlreadyExists, Conflict, Internal, InvalidArgument, NotFound, Unavailable
from stigmer.store.base import ListQuery, Record, Store
from stigmer.store.sqlite import SqliteStore
from stigmer.store.sqlite_schema import MIGRATIONS
from stigmer.store.urls import store_from_url

T = TypeVar("T")


class Run(Protocol):
    """The `run` fixture: runs a coroutine on the test's event loop."""

    def __call__(self, coroutine: Coroutine[Any, Any, T], /) -> T: ...


def make_record(slug: str, *, kind: str = "agent", org: str = "org-1", **columns: Any) -> Record:
    """A version-1 record with a random id (so id order is not insertion order)."""
    fields: dict[str, Any] = {"id": uuid.uuid4().hex, "version": 1, "data": b"\x00body\xff"}
    return Record(kind=kind, org=org, slug=slug, **(fields | columns))


async def insert_all(store: Store, *records: Record) -> None:
    async with store.transaction() as tx:
        for record in records:
            await tx.insert(record)


async def fetch(store: Store, record: Record) -> Record | None:
    async with store.transaction(write=False) as tx:
        return await tx.get(record.kind, record.id)


async def fetch_by_slug(store: Store, record: Record) -> Record | None:
    async with store.transaction(write=False) as tx:
        return await tx.get_by_slug(record.kind, record.org, record.slug)


async def count(store: Store, kind: str = "agent") -> int:
    async with store.transaction(write=False) as tx:
        return await tx.count(kind)


async def list_ids(store: Store, kind: str = "agent", **filters: Any) -> list[str]:
    async with store.transaction(write=False) as tx:
        return [record.id for record in await tx.list(ListQuery(kind, **filters))]


async def update(store: Store, record: Record, expected_version: int) -> None:
    async with store.transaction() as tx:
        await tx.update(record, expected_version)


async def delete(store: Store, record: Record) -> bool:
    async with store.transaction() as tx:
        return await tx.delete(record.kind, record.id)


def make_full_record(slug: str, tag: str, **columns: Any) -> Record:
    """A record with every column set: raw bytes, labels with '.' and '/' in a key."""
    return make_record(
        slug,
        owner_id=f"user-{tag}",
        agent_id=f"agent-{tag}",
        agent_instance_id=f"instance-{tag}",
        session_id=f"session-{tag}",
        phase=tag.upper(),
        labels={"app.kubernetes.io/name": tag, "tier": "gold"},
        data=bytes(range(256)) + tag.encode(),
        **columns,
    )


# --- insert, get, delete -------------------------------------------------------------------


def test_inserted_record_is_returned_equal_by_get_and_get_by_slug(store: Store, run: Run) -> None:
    record = make_full_record("researcher", "first")
    run(insert_all(store, record))

    assert run(fetch(store, record)) == record
    assert run(fetch_by_slug(store, record)) == record


def test_get_of_unknown_id_or_with_wrong_kind_or_org_is_none(store: Store, run: Run) -> None:
    record = make_record("researcher")
    run(insert_all(store, record))

    assert run(fetch(store, replace(record, id="no-such-id"))) is None
    assert run(fetch(store, replace(record, kind="skill"))) is None
    assert run(fetch_by_slug(store, replace(record, kind="skill"))) is None
    assert run(fetch_by_slug(store, replace(record, org="org-2"))) is None


def test_second_insert_of_same_slug_is_already_exists_with_existing_id(
    store: Store, run: Run
) -> None:
    first, second = make_record("researcher"), make_record("researcher", data=b"second")
    run(insert_all(store, first))

    with pytest.raises(AlreadyExists) as raised:
        run(insert_all(store, second))

    assert (raised.value.existing_id, raised.value.slug) == (first.id, "researcher")
    assert run(fetch(store, first)) == first
    assert run(fetch(store, second)) is None


def test_insert_reusing_a_taken_id_is_already_exists_with_that_id(store: Store, run: Run) -> None:
    first = make_record("researcher")
    run(insert_all(store, first))

    with pytest.raises(AlreadyExists) as raised:
        run(insert_all(store, make_record("writer", id=first.id)))

    assert raised.value.existing_id == first.id
    assert run(count(store)) == 1


def test_same_slug_in_another_org_or_kind_is_a_separate_record(store: Store, run: Run) -> None:
    records = [
        make_record("researcher"),
        make_record("researcher", org="org-2"),
        make_record("researcher", kind="skill"),
    ]
    run(insert_all(store, *records))

    assert [run(fetch(store, record)) for record in records] == records
    assert (run(count(store, "agent")), run(count(store, "skill"))) == (2, 1)


def test_insert_if_absent_inserts_once_then_returns_the_stored_record(
    store: Store, run: Run
) -> None:
    first, second = make_record("researcher"), make_record("researcher", data=b"second")

    async def insert_if_absent(record: Record) -> tuple[Record, bool]:
        async with store.transaction() as tx:
            return await tx.insert_if_absent(record)

    assert run(insert_if_absent(first)) == (first, True)
    assert run(insert_if_absent(second)) == (first, False)
    assert run(count(store)) == 1


def test_delete_returns_true_once_then_false(store: Store, run: Run) -> None:
    record = make_record("researcher")
    run(insert_all(store, record))

    assert [run(delete(store, record)), run(delete(store, record))] == [True, False]
    assert run(fetch(store, record)) is None
    assert run(count(store)) == 0


# --- update --------------------------------------------------------------------------------


def test_update_with_current_version_replaces_data_and_columns(store: Store, run: Run) -> None:
    record = make_full_record("researcher", "first")
    updated = make_full_record("analyst", "second", id=record.id, version=2)
    run(insert_all(store, record))

    run(update(store, updated, expected_version=1))

    assert run(fetch(store, record)) == updated


def test_update_with_stale_version_is_conflict_naming_both_versions(store: Store, run: Run) -> None:
    record = make_record("researcher")
    run(insert_all(store, record))

    with pytest.raises(Conflict) as raised:
        run(update(store, make_record("researcher", id=record.id, version=3), expected_version=2))

    assert raised.value.facts["expected_version"] == "2"
    assert raised.value.facts["actual_version"] == "1"
    assert run(fetch(store, record)) == record


def test_update_of_deleted_record_is_not_found(store: Store, run: Run) -> None:
    record = make_record("researcher")
    run(insert_all(store, record))
    assert run(delete(store, record)) is True

    with pytest.raises(NotFound) as raised:
        run(update(store, make_record("researcher", id=record.id, version=2), expected_version=1))

    assert raised.value.reference == record.id


# --- list ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column", ["org", "owner_id", "agent_id", "agent_instance_id", "session_id", "phase"]
)
def test_list_filters_by_each_indexed_column(store: Store, run: Run, column: str) -> None:
    matching = [make_record(f"match-{n}", **{column: "wanted"}) for n in range(3)]
    others = [make_record(f"other-{n}", **{column: "unwanted"}) for n in range(2)]
    other_kind = make_record("skill", kind="skill", **{column: "wanted"})
    run(insert_all(store, *matching, *others, other_kind))

    assert run(list_ids(store, **{column: "wanted"})) == sorted(r.id for r in matching)


def test_list_by_labels_requires_every_pair_to_match(store: Store, run: Run) -> None:
    name, tier = "app.kubernetes.io/name", "tier"
    both = make_record("both", labels={name: "web", tier: "front", "x": "y"})
    name_only = make_record("name-only", labels={name: "web"})
    other_tier = make_record("other-tier", labels={name: "web", tier: "back"})
    run(insert_all(store, both, name_only, other_tier, make_record("unlabelled")))

    assert run(list_ids(store, labels={name: "web", tier: "front"})) == [both.id]
    by_name = run(list_ids(store, labels={name: "web"}))
    assert by_name == sorted([both.id, name_only.id, other_tier.id])
    assert run(list_ids(store, labels={name: "api"})) == []


def test_list_returns_only_its_kind_ordered_by_id(store: Store, run: Run) -> None:
    agents = [make_record(f"agent-{n}") for n in range(20)]
    run(insert_all(store, *agents, make_record("skill-0", kind="skill")))

    assert run(list_ids(store)) == sorted(record.id for record in agents)


def test_list_pages_with_after_id_visit_every_record_exactly_once(store: Store, run: Run) -> None:
    records = [make_record(f"agent-{n:03d}") for n in range(250)]
    run(insert_all(store, *records))

    pages = [run(list_ids(store, limit=100))]
    while pages[-1] and len(pages) < 10:
        pages.append(run(list_ids(store, after_id=pages[-1][-1], limit=100)))

    assert [len(page) for page in pages] == [100, 100, 50, 0]
    assert [record_id for page in pages for record_id in page] == sorted(r.id for r in records)


# --- transactions --------------------------------------------------------------------------


def test_exception_in_transaction_rolls_back_every_write(store: Store, run: Run) -> None:
    kept = make_record("kept")
    run(insert_all(store, kept))

    async def failing() -> None:
        async with store.transaction() as tx:
            for n in range(3):
                await tx.insert(make_record(f"added-{n}"))
            await tx.update(make_record("kept", id=kept.id, version=2, data=b"x"), 1)
            assert await tx.count("agent") == 4
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run(failing())

    assert run(count(store)) == 1
    assert run(fetch(store, kept)) == kept


def test_discard_rolls_back_quietly(store: Store, run: Run) -> None:
    record = make_record("dry-run")

    async def dry_run() -> Record | None:
        async with store.transaction() as tx:
            await tx.insert(record)
            seen_inside = await tx.get("agent", record.id)
            tx.discard()
        return seen_inside

    assert run(dry_run()) == record
    assert run(fetch(store, record)) is None
    assert run(count(store)) == 0


def test_committed_transaction_is_visible_in_a_new_read_transaction(store: Store, run: Run) -> None:
    record = make_record("researcher")

    async def scenario() -> tuple[Record | None, int, list[str]]:
        await insert_all(store, record)
        async with store.transaction(write=False) as tx:
            found = await tx.get_by_slug("agent", "org-1", "researcher")
            return found, await tx.count("agent"), [r.id for r in await tx.list(ListQuery("agent"))]

    assert run(scenario()) == (record, 1, [record.id])


def test_nested_transaction_in_same_task_is_internal_and_outer_still_commits(
    store: Store, run: Run
) -> None:
    record = make_record("outer")

    async def scenario() -> None:
        async with store.transaction() as tx:
            with pytest.raises(Internal):
                async with store.transaction(write=False):
                    pass
            await tx.insert(record)

    run(scenario())
    assert run(fetch(store, record)) == record


def test_task_started_inside_a_transaction_can_open_its_own_after_it_ends(
    store: Store, run: Run
) -> None:
    record = make_record("from-task")

    async def scenario() -> None:
        async with store.transaction() as tx:
            task = asyncio.create_task(insert_all(store, record))
            await tx.count("agent")
        await task

    run(scenario())
    assert run(fetch(store, record)) == record


def test_task_started_inside_a_transaction_waits_for_it_instead_of_failing(
    store: Store, run: Run
) -> None:
    record = make_record("from-task")

    async def scenario() -> None:
        async with store.transaction() as tx:
            task = asyncio.create_task(insert_all(store, record))
            await asyncio.sleep(0)  # the task starts while this transaction is open
            assert await tx.get("agent", record.id) is None
        await task

    run(scenario())
    assert run(fetch(store, record)) == record


# --- concurrency ---------------------------------------------------------------------------


async def get_or_create(store: Store, record: Record, *, read_first: bool = False) -> Record:
    """insert_if_absent in its own transaction; `read_first` looks the slug up before,
    then pauses, so other writers commit between this transaction's read and its write."""
    async with store.transaction() as tx:
        found = await tx.get_by_slug(record.kind, record.org, record.slug) if read_first else None
        await asyncio.sleep(0.002 if read_first else 0)  # let other writers run meanwhile
        if found is None:
            found, _ = await tx.insert_if_absent(record)
        return found


def test_concurrent_get_or_create_in_tasks_stores_one_row_and_agrees_on_its_id(
    store: Store, run: Run
) -> None:
    candidates = [make_record("shared", id=f"task-{n:02d}") for n in range(32)]

    async def scenario() -> list[Record]:
        return await asyncio.gather(*(get_or_create(store, r) for r in candidates))

    returned_ids = {record.id for record in run(scenario())}

    assert len(returned_ids) == 1
    assert returned_ids <= {candidate.id for candidate in candidates}
    assert run(count(store)) == 1


def _get_or_create_in_process(
    url: str, worker: int, barrier: Barrier, results: Queue[list[tuple[str, str]] | str]
) -> None:
    """Runs in a spawned process: 25 get-or-creates over the same 10 slugs, in its own order."""

    async def calls() -> list[tuple[str, str]]:
        store = store_from_url(url)
        await store.open()
        try:
            pairs = []
            for n in range(25):
                slug = f"slug-{(n + 3 * worker) % 10}"
                candidate = make_record(slug, id=f"w{worker}-{n:02d}")
                stored = await get_or_create(store, candidate, read_first=n % 2 == 0)
                pairs.append((slug, stored.id))
            return pairs
        finally:
            await store.close()

    try:
        barrier.wait(timeout=60)
        results.put(asyncio.run(calls()))
    except BaseException as error:  # report it at once rather than let the parent time out
        results.put(f"worker {worker}: {error!r}")
        raise


@pytest.mark.slow
def test_concurrent_get_or_create_across_processes_agrees_on_one_id_per_slug(
    store: Store, run: Run
) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(4), spawn.Queue()
    workers = [
        spawn.Process(target=_get_or_create_in_process, args=(store.url, n, barrier, results))
        for n in range(4)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes: list[list[tuple[str, str]] | str] = [results.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            worker.kill()  # a no-op unless it hangs

    per_process = [outcome for outcome in outcomes if not isinstance(outcome, str)]
    assert per_process == outcomes, [outcome for outcome in outcomes if isinstance(outcome, str)]
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert [len(pairs) for pairs in per_process] == [25, 25, 25, 25]
    ids_by_slug: dict[str, set[str]] = {f"slug-{n}": set() for n in range(10)}
    for slug, record_id in (pair for pairs in per_process for pair in pairs):
        ids_by_slug[slug].add(record_id)
    assert [len(ids) for ids in ids_by_slug.values()] == [1] * 10, ids_by_slug

    async def stored_ids() -> dict[str, set[str]]:
        async with store.transaction(write=False) as tx:
            return {r.slug: {r.id} for r in await tx.list(ListQuery("agent"))}

    assert run(stored_ids()) == ids_by_slug
    assert run(count(store)) == 10


# --- SQLite-specific: the file, its migrations and store URLs --------------------------------


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
