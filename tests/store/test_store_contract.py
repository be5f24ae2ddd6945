"""The store contract: every backend must pass this suite unchanged.

Tests take `store` (an open store, one per backend in conftest.BACKENDS) and `runner`
(the test's event loop) and run an inner `scenario()` coroutine with `runner.run`.
The tests at the end marked "SQLite-specific" exercise the SQLite file itself.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import uuid
from dataclasses import replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from stigmer.errors import AlreadyExists, Conflict, Internal, InvalidArgument, NotFound, Unavailable
from stigmer.store.base import ListQuery, Record, Store
from stigmer.store.sqlite import SqliteStore
from stigmer.store.sqlite_schema import MIGRATIONS
from stigmer.store.urls import store_from_url


def make_record(
    slug: str,
    *,
    kind: str = "agent",
    org: str = "org-1",
    record_id: str = "",
    version: int = 1,
    data: bytes = b"",
) -> Record:
    """A record with a fresh random id (so id order is not insertion order)."""
    return Record(
        kind=kind,
        id=record_id or uuid.uuid4().hex,
        org=org,
        slug=slug,
        version=version,
        data=data or f"body of {slug}\x00".encode() + b"\xff\xfe",
    )


async def insert_all(store: Store, *records: Record) -> None:
    async with store.transaction() as tx:
        for record in records:
            await tx.insert(record)


async def fetch(store: Store, record: Record) -> Record | None:
    async with store.transaction(write=False) as tx:
        return await tx.get(record.kind, record.id)


async def count(store: Store, kind: str = "agent") -> int:
    async with store.transaction(write=False) as tx:
        return await tx.count(kind)


async def list_ids(store: Store, query: ListQuery) -> list[str]:
    async with store.transaction(write=False) as tx:
        return [record.id for record in await tx.list(query)]


# --- insert, get, delete -------------------------------------------------------------------


def test_inserted_record_is_returned_equal_by_get_and_get_by_slug(
    store: Store, runner: asyncio.Runner
) -> None:
    record = replace(
        make_record("researcher", data=bytes(range(256))),
        owner_id="user-7",
        labels={"team": "ml", "app.kubernetes.io/name": "web"},
        agent_id="agent-1",
        agent_instance_id="instance-2",
        session_id="session-3",
        phase="RUNNING",
    )

    async def scenario() -> tuple[Record | None, Record | None]:
        await insert_all(store, record)
        async with store.transaction(write=False) as tx:
            return await tx.get("agent", record.id), await tx.get_by_slug(
                "agent", "org-1", "researcher"
            )

    by_id, by_slug = runner.run(scenario())
    assert by_id == record
    assert by_slug == record


def test_get_of_unknown_id_or_wrong_kind_or_org_is_none(
    store: Store, runner: asyncio.Runner
) -> None:
    record = make_record("researcher")

    async def scenario() -> list[Record | None]:
        await insert_all(store, record)
        async with store.transaction(write=False) as tx:
            return [
                await tx.get("agent", "no-such-id"),
                await tx.get("skill", record.id),
                await tx.get_by_slug("skill", "org-1", "researcher"),
                await tx.get_by_slug("agent", "org-2", "researcher"),
                await tx.get_by_slug("agent", "org-1", "no-such-slug"),
            ]

    assert runner.run(scenario()) == [None] * 5


def test_second_insert_of_same_slug_is_already_exists_with_existing_id(
    store: Store, runner: asyncio.Runner
) -> None:
    first = make_record("researcher", data=b"first")
    second = make_record("researcher", data=b"second")
    runner.run(insert_all(store, first))

    with pytest.raises(AlreadyExists) as raised:
        runner.run(insert_all(store, second))

    assert raised.value.existing_id == first.id
    assert raised.value.slug == "researcher"
    assert runner.run(fetch(store, first)) == first
    assert runner.run(fetch(store, second)) is None


def test_insert_reusing_a_taken_id_is_already_exists_with_that_id(
    store: Store, runner: asyncio.Runner
) -> None:
    first = make_record("researcher")
    runner.run(insert_all(store, first))

    with pytest.raises(AlreadyExists) as raised:
        runner.run(insert_all(store, make_record("writer", record_id=first.id)))

    assert raised.value.existing_id == first.id
    assert runner.run(count(store)) == 1


def test_same_slug_in_another_org_or_kind_is_a_separate_record(
    store: Store, runner: asyncio.Runner
) -> None:
    records = [
        make_record("researcher"),
        make_record("researcher", org="org-2"),
        make_record("researcher", kind="skill"),
    ]
    runner.run(insert_all(store, *records))

    assert [runner.run(fetch(store, record)) for record in records] == records
    assert runner.run(count(store, "agent")) == 2
    assert runner.run(count(store, "skill")) == 1


def test_insert_if_absent_inserts_once_then_returns_the_stored_record(
    store: Store, runner: asyncio.Runner
) -> None:
    first = make_record("researcher", data=b"first")
    second = make_record("researcher", data=b"second")

    async def scenario() -> tuple[tuple[Record, bool], tuple[Record, bool]]:
        async with store.transaction() as tx:
            created = await tx.insert_if_absent(first)
        async with store.transaction() as tx:
            return created, await tx.insert_if_absent(second)

    created, found = runner.run(scenario())
    assert created == (first, True)
    assert found == (first, False)
    assert runner.run(count(store)) == 1


def test_delete_returns_true_once_then_false(store: Store, runner: asyncio.Runner) -> None:
    record = make_record("researcher")

    async def scenario() -> list[bool]:
        await insert_all(store, record)
        async with store.transaction() as tx:
            return [await tx.delete("agent", record.id), await tx.delete("agent", record.id)]

    assert runner.run(scenario()) == [True, False]
    assert runner.run(fetch(store, record)) is None
    assert runner.run(count(store)) == 0


# --- update --------------------------------------------------------------------------------


def test_update_with_current_version_replaces_data_and_columns(
    store: Store, runner: asyncio.Runner
) -> None:
    record = make_record("researcher")
    updated = replace(
        record,
        version=2,
        data=b"new body",
        slug="analyst",
        owner_id="user-9",
        labels={"tier": "gold"},
        agent_id="agent-9",
        agent_instance_id="instance-9",
        session_id="session-9",
        phase="DONE",
    )

    async def scenario() -> None:
        await insert_all(store, record)
        async with store.transaction() as tx:
            await tx.update(updated, expected_version=1)

    runner.run(scenario())
    assert runner.run(fetch(store, record)) == updated


def test_update_with_stale_version_is_conflict_naming_both_versions(
    store: Store, runner: asyncio.Runner
) -> None:
    record = make_record("researcher")
    runner.run(insert_all(store, record))

    async def update(expected_version: int) -> None:
        async with store.transaction() as tx:
            await tx.update(replace(record, version=3, data=b"lost"), expected_version)

    with pytest.raises(Conflict) as raised:
        runner.run(update(expected_version=2))

    assert raised.value.facts["expected_version"] == "2"
    assert raised.value.facts["actual_version"] == "1"
    assert runner.run(fetch(store, record)) == record


def test_update_of_deleted_record_is_not_found(store: Store, runner: asyncio.Runner) -> None:
    record = make_record("researcher")

    async def scenario() -> None:
        await insert_all(store, record)
        async with store.transaction() as tx:
            assert await tx.delete("agent", record.id) is True
            await tx.update(replace(record, version=2), expected_version=1)

    with pytest.raises(NotFound) as raised:
        runner.run(scenario())

    assert raised.value.reference == record.id


# --- list ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column", ["org", "owner_id", "agent_id", "agent_instance_id", "session_id", "phase"]
)
def test_list_filters_by_each_indexed_column(
    store: Store, runner: asyncio.Runner, column: str
) -> None:
    matching = [replace(make_record(f"match-{n}"), **{column: "wanted"}) for n in range(3)]
    others = [replace(make_record(f"other-{n}"), **{column: "unwanted"}) for n in range(2)]
    runner.run(insert_all(store, *matching, *others))

    listed = runner.run(list_ids(store, ListQuery(kind="agent", **{column: "wanted"})))

    assert listed == sorted(record.id for record in matching)


def test_list_by_labels_requires_every_pair_to_match(store: Store, runner: asyncio.Runner) -> None:
    name, tier = "app.kubernetes.io/name", "tier"
    both = replace(make_record("both"), labels={name: "web", tier: "front", "x": "y"})
    name_only = replace(make_record("name-only"), labels={name: "web"})
    other_tier = replace(make_record("other-tier"), labels={name: "web", tier: "back"})
    unlabelled = make_record("unlabelled")
    runner.run(insert_all(store, both, name_only, other_tier, unlabelled))

    by_both = runner.run(
        list_ids(store, ListQuery(kind="agent", labels={name: "web", tier: "front"}))
    )
    by_name = runner.run(list_ids(store, ListQuery(kind="agent", labels={name: "web"})))

    assert by_both == [both.id]
    assert by_name == sorted([both.id, name_only.id, other_tier.id])


def test_list_returns_only_its_kind_ordered_by_id(store: Store, runner: asyncio.Runner) -> None:
    agents = [make_record(f"agent-{n}") for n in range(20)]
    runner.run(insert_all(store, *agents, make_record("skill-0", kind="skill")))

    listed = runner.run(list_ids(store, ListQuery(kind="agent")))

    assert listed == sorted(record.id for record in agents)


def test_list_pages_with_after_id_visit_every_record_exactly_once(
    store: Store, runner: asyncio.Runner
) -> None:
    records = [make_record(f"agent-{n:03d}") for n in range(250)]
    runner.run(insert_all(store, *records))

    pages: list[list[str]] = []
    after_id = ""
    while len(pages) < 10:
        page = runner.run(list_ids(store, ListQuery(kind="agent", after_id=after_id, limit=100)))
        pages.append(page)
        if not page:
            break
        after_id = page[-1]

    assert [len(page) for page in pages] == [100, 100, 50, 0]
    assert [record_id for page in pages for record_id in page] == sorted(r.id for r in records)


# --- transactions --------------------------------------------------------------------------


def test_exception_in_transaction_rolls_back_every_write(
    store: Store, runner: asyncio.Runner
) -> None:
    kept = make_record("kept")
    runner.run(insert_all(store, kept))
    added = [make_record(f"added-{n}") for n in range(3)]

    async def failing() -> None:
        async with store.transaction() as tx:
            for record in added:
                await tx.insert(record)
            await tx.update(replace(kept, version=2, data=b"changed"), expected_version=1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        runner.run(failing())

    assert runner.run(count(store)) == 1
    assert runner.run(fetch(store, kept)) == kept


def test_discard_rolls_back_quietly(store: Store, runner: asyncio.Runner) -> None:
    record = make_record("dry-run")

    async def scenario() -> Record | None:
        async with store.transaction() as tx:
            await tx.insert(record)
            seen_inside = await tx.get("agent", record.id)
            tx.discard()
        return seen_inside

    assert runner.run(scenario()) == record
    assert runner.run(fetch(store, record)) is None
    assert runner.run(count(store)) == 0


def test_committed_transaction_is_visible_in_a_new_read_transaction(
    store: Store, runner: asyncio.Runner
) -> None:
    record = make_record("researcher")

    async def scenario() -> tuple[Record | None, int, list[str]]:
        await insert_all(store, record)
        async with store.transaction(write=False) as tx:
            found = await tx.get_by_slug("agent", "org-1", "researcher")
            return found, await tx.count("agent"), [r.id for r in await tx.list(ListQuery("agent"))]

    assert runner.run(scenario()) == (record, 1, [record.id])


def test_nested_transaction_in_same_task_is_internal_and_outer_still_commits(
    store: Store, runner: asyncio.Runner
) -> None:
    record = make_record("outer")

    async def scenario() -> None:
        async with store.transaction() as tx:
            with pytest.raises(Internal):
                async with store.transaction(write=False):
                    pass
            await tx.insert(record)

    runner.run(scenario())
    assert runner.run(fetch(store, record)) == record


@pytest.mark.xfail(
    strict=True,
    reason="sqlite.py:226 checks a ContextVar that tasks created inside a transaction inherit",
)
def test_task_started_inside_a_transaction_can_open_its_own_after_it_ends(
    store: Store, runner: asyncio.Runner
) -> None:
    record = make_record("from-task")

    async def background() -> None:
        await insert_all(store, record)

    async def scenario() -> None:
        async with store.transaction() as tx:
            task = asyncio.create_task(background())
            await tx.count("agent")
        await task

    runner.run(scenario())
    assert runner.run(fetch(store, record)) == record


# --- concurrency ---------------------------------------------------------------------------


async def get_or_create(store: Store, record: Record) -> Record:
    async with store.transaction() as tx:
        await asyncio.sleep(0)  # let other tasks run while this transaction is open
        stored, _ = await tx.insert_if_absent(record)
        return stored


def test_concurrent_get_or_create_in_tasks_stores_one_row_and_agrees_on_its_id(
    store: Store, runner: asyncio.Runner
) -> None:
    candidates = [make_record("shared", record_id=f"task-{n:02d}") for n in range(32)]

    async def scenario() -> list[Record]:
        return await asyncio.gather(*(get_or_create(store, r) for r in candidates))

    results = runner.run(scenario())

    assert len({record.id for record in results}) == 1
    assert results[0].id in {candidate.id for candidate in candidates}
    assert runner.run(count(store)) == 1


def _get_or_create_in_process(
    url: str, worker: int, barrier: Barrier, results: Queue[tuple[int, list[tuple[str, str]]]]
) -> None:
    """Runs in a spawned process: 25 get-or-creates over 10 shared slugs."""

    async def calls() -> list[tuple[str, str]]:
        other = store_from_url(url)
        await other.open()
        try:
            pairs = []
            for n in range(25):
                slug = f"slug-{(n + 3 * worker) % 10}"
                candidate = make_record(slug, record_id=f"w{worker}-{n:02d}")
                pairs.append((slug, (await get_or_create(other, candidate)).id))
            return pairs
        finally:
            await other.close()

    barrier.wait(timeout=60)
    results.put((worker, asyncio.run(calls())))


@pytest.mark.slow
def test_concurrent_get_or_create_across_processes_agrees_on_one_id_per_slug(
    store: Store, runner: asyncio.Runner
) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    results: Queue[tuple[int, list[tuple[str, str]]]] = context.Queue()
    processes = [
        context.Process(target=_get_or_create_in_process, args=(store.url, n, barrier, results))
        for n in range(4)
    ]
    for process in processes:
        process.start()
    try:
        collected = dict(results.get(timeout=90) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=30)

    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    assert sorted(collected) == [0, 1, 2, 3]
    ids_by_slug: dict[str, set[str]] = {}
    for pairs in collected.values():
        assert len(pairs) == 25
        for slug, record_id in pairs:
            ids_by_slug.setdefault(slug, set()).add(record_id)
    assert sorted(ids_by_slug) == [f"slug-{n}" for n in range(10)]
    assert all(len(ids) == 1 for ids in ids_by_slug.values()), ids_by_slug
    assert runner.run(count(store)) == 10


# --- SQLite-specific: the file, its migrations and store URLs --------------------------------


def _migration_rows(path: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(path) as connection:
        sql = "SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version"
        rows: list[tuple[int, int]] = connection.execute(sql).fetchall()
    connection.close()
    return rows


def test_reopened_sqlite_file_keeps_data_and_migrates_once(
    tmp_path: Path, runner: asyncio.Runner
) -> None:
    path = tmp_path / "store.db"
    record = make_record("researcher")

    async def open_insert_close() -> None:
        first = SqliteStore(path)
        await first.open()
        await insert_all(first, record)
        await first.close()

    async def reopen_and_fetch() -> Record | None:
        second = SqliteStore(path)
        await second.open()
        try:
            return await fetch(second, record)
        finally:
            await second.close()

    runner.run(open_insert_close())
    assert runner.run(reopen_and_fetch()) == record
    assert runner.run(reopen_and_fetch()) == record
    assert _migration_rows(path) == [(version, 1) for version, _ in MIGRATIONS]


def test_sqlite_file_with_newer_schema_is_refused_as_unavailable(
    tmp_path: Path, runner: asyncio.Runner
) -> None:
    path = tmp_path / "store.db"
    runner.run(_open_and_close(SqliteStore(path)))
    newer = MIGRATIONS[-1][0] + 1
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO schema_migrations VALUES (?, datetime('now'))", (newer,))
    connection.close()

    refused = SqliteStore(path)
    with pytest.raises(Unavailable, match="newer"):
        runner.run(refused.open())
    runner.run(refused.close())

    assert _migration_rows(path)[-1] == (newer, 1)


@pytest.mark.xfail(
    strict=True, reason="sqlite.py:187 keeps the connection when _migrate refuses the file"
)
def test_store_refused_at_open_stays_closed(tmp_path: Path, runner: asyncio.Runner) -> None:
    path = tmp_path / "store.db"
    runner.run(_open_and_close(SqliteStore(path)))
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO schema_migrations VALUES (999, datetime('now'))")
    connection.close()
    refused = SqliteStore(path)
    with pytest.raises(Unavailable):
        runner.run(refused.open())

    try:
        with pytest.raises(Unavailable, match="closed"):
            runner.run(count(refused))
    finally:
        runner.run(refused.close())


async def _open_and_close(store: Store) -> None:
    await store.open()
    await store.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///abs/path/store.db", Path("/abs/path/store.db")),
        ("/abs/path/store.db", Path("/abs/path/store.db")),
        ("relative/store.db", Path("relative/store.db")),
        ("sqlite:relative/store.db", Path("relative/store.db")),
    ],
)
def test_store_from_url_selects_sqlite_for_sqlite_urls_and_paths(url: str, path: Path) -> None:
    selected = store_from_url(url)

    assert isinstance(selected, SqliteStore)
    assert selected.path == path


@pytest.mark.parametrize("url", ["mysql://db/stigmer", "redis://localhost", "s3://bucket/x"])
def test_store_from_url_with_unknown_scheme_is_invalid_argument(url: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        store_from_url(url)

    assert raised.value.facts["field"] == "store"


@pytest.mark.xfail(
    strict=True,
    reason="sqlite.py:173 writes sqlite:///<path>, which urls.py reads as an absolute path",
)
def test_sqlite_store_url_selects_the_same_file_for_a_relative_path() -> None:
    reopened = store_from_url(SqliteStore(Path("relative/store.db")).url)

    assert isinstance(reopened, SqliteStore)
    assert reopened.path == Path("relative/store.db")
