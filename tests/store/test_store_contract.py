"""The store contract: every backend in STORE_BACKENDS (tests/conftest.py) must pass
this suite unchanged.

Tests take `store` (open, empty) and `run` (the test's event loop) and run inner
coroutines with `run(...)`. The sections marked SQLite-specific and PostgreSQL-specific
test what only one backend has: the SQLite file; the PostgreSQL database, its migrations
under concurrent servers, its URLs, and what a pool of concurrent connections adds
(row locks, aborted statements, timeouts).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, closing
from dataclasses import replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
import pytest

from stigmer.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from stigmer.resources.selectors import parse_selector
from stigmer.store.base import Change, ListQuery, Record, Store
from stigmer.store.changes import ADDED, COMPACTION_EVERY, DELETED, MODIFIED
from stigmer.store.postgres import PostgresStore
from stigmer.store.postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS
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


# Records for the selector tests: every operator must also decide correctly
# for a record that lacks the key (`unlabelled`, `other-key`).
SELECTOR_LABELS: dict[str, dict[str, str]] = {
    "gold-web": {"tier": "gold", "app.kubernetes.io/name": "web"},
    "silver-web": {"tier": "silver", "app.kubernetes.io/name": "web"},
    "bronze": {"tier": "bronze"},
    "empty-tier": {"tier": ""},
    "other-key": {"team": "demo"},
    "unlabelled": {},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=gold", {"gold-web"}),
        ("tier==silver", {"silver-web"}),
        ("tier=", {"empty-tier"}),
        ("tier!=gold", {"silver-web", "bronze", "empty-tier", "other-key", "unlabelled"}),
        ("tier in (gold, silver)", {"gold-web", "silver-web"}),
        ("tier notin (gold,silver)", {"bronze", "empty-tier", "other-key", "unlabelled"}),
        ("tier", {"gold-web", "silver-web", "bronze", "empty-tier"}),
        ("!tier", {"other-key", "unlabelled"}),
        ("app.kubernetes.io/name=web,tier!=gold", {"silver-web"}),
        ("tier,!app.kubernetes.io/name", {"bronze", "empty-tier"}),
        ("team notin (demo),!tier", {"unlabelled"}),
    ],
)
def test_list_by_selector_evaluates_each_operator(
    store: Store, run: Run, selector: str, expected: set[str]
) -> None:
    records = {slug: make_record(slug, labels=labels) for slug, labels in SELECTOR_LABELS.items()}
    run(insert_all(store, *records.values()))
    requirements = parse_selector(selector)

    found = run(list_ids(store, selector=requirements))

    assert found == sorted(records[slug].id for slug in expected)
    in_python = {
        slug
        for slug, labels in SELECTOR_LABELS.items()
        if all(requirement.matches(labels) for requirement in requirements)
    }
    assert in_python == expected


def test_list_by_selector_and_labels_requires_both(store: Store, run: Run) -> None:
    records = {slug: make_record(slug, labels=labels) for slug, labels in SELECTOR_LABELS.items()}
    run(insert_all(store, *records.values()))

    found = run(
        list_ids(
            store, labels={"app.kubernetes.io/name": "web"}, selector=parse_selector("tier!=gold")
        )
    )

    assert found == [records["silver-web"].id]


def test_list_by_selector_pages_over_matches_only(store: Store, run: Run) -> None:
    matching = [make_record(f"match-{n}", labels={"tier": "gold"}) for n in range(7)]
    others = [make_record(f"other-{n}", labels={"tier": "bronze"}) for n in range(7)]
    run(insert_all(store, *matching, *others))
    selector = parse_selector("tier notin (bronze)")

    first = run(list_ids(store, selector=selector, limit=4))
    rest = run(list_ids(store, selector=selector, limit=4, after_id=first[-1]))

    assert len(first) == 4
    assert first + rest == sorted(r.id for r in matching)


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


# --- the change log ------------------------------------------------------------------------


async def changes_after(store: Store, after: int = 0, *kinds: str) -> list[Change]:
    async with store.transaction(write=False) as tx:
        return await tx.list_changes(after, kinds)


def _summary(changes: list[Change]) -> list[tuple[str, str, int]]:
    return [(c.change_type, c.record.slug, c.record.version) for c in changes]


def test_every_write_logs_one_change_in_order_with_growing_sequences(
    store: Store, run: Run
) -> None:
    first = make_full_record("first", "a")
    second = make_record("second")

    async def scenario() -> list[Change]:
        await insert_all(store, first)
        async with store.transaction() as tx:
            await tx.insert_if_absent(second)
            await tx.insert_if_absent(replace(second, id=uuid.uuid4().hex))  # not inserted
        await update(store, replace(first, version=2, data=b"v2"), 1)
        await delete(store, second)
        await delete(store, second)  # already gone: nothing to log
        return await changes_after(store)

    changes = run(scenario())
    assert _summary(changes) == [
        (ADDED, "first", 1),
        (ADDED, "second", 1),
        (MODIFIED, "first", 2),
        (DELETED, "second", 1),
    ]
    sequences = [c.sequence for c in changes]
    assert sequences == sorted(set(sequences))
    assert changes[0].record == first
    assert changes[2].record == replace(first, version=2, data=b"v2")
    assert run(_newest(store)) == sequences[-1]


async def _newest(store: Store) -> int:
    async with store.transaction(write=False) as tx:
        return await tx.newest_change_sequence()


def test_deleted_change_carries_the_last_stored_body_labels_and_owner(
    store: Store, run: Run
) -> None:
    record = make_full_record("doomed", "z")
    latest = replace(record, version=2, data=b"last state", labels={"team": "red"})

    async def scenario() -> list[Change]:
        await insert_all(store, record)
        await update(store, latest, 1)
        await delete(store, record)
        return await changes_after(store)

    deleted = run(scenario())[-1]
    assert deleted.change_type == DELETED
    assert deleted.record == latest


def test_rolled_back_or_discarded_writes_log_no_change(store: Store, run: Run) -> None:
    kept = make_record("kept")

    async def scenario() -> tuple[list[Change], int]:
        await insert_all(store, kept)
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.insert(make_record("rolled-back"))
                await tx.update(replace(kept, version=2), 1)
                raise RuntimeError("boom")
        async with store.transaction() as tx:
            await tx.delete("agent", kept.id)
            tx.discard()
        return await changes_after(store), await _newest(store)

    changes, newest = run(scenario())
    assert _summary(changes) == [(ADDED, "kept", 1)]
    assert newest == changes[0].sequence


def test_update_without_change_logging_writes_the_record_but_no_change(
    store: Store, run: Run
) -> None:
    record = make_record("quiet")

    async def scenario() -> tuple[list[Change], Record | None]:
        await insert_all(store, record)
        async with store.transaction() as tx:
            await tx.update(replace(record, version=2), 1, is_change_logged=False)
        return await changes_after(store), await fetch(store, record)

    changes, stored = run(scenario())
    assert _summary(changes) == [(ADDED, "quiet", 1)]
    assert stored is not None and stored.version == 2


def test_changes_page_after_a_sequence_and_filter_by_kind(store: Store, run: Run) -> None:
    records = [make_record(f"a-{n}") for n in range(5)] + [
        make_record(f"s-{n}", kind="session") for n in range(3)
    ]

    async def scenario() -> tuple[list[Change], list[Change], list[str]]:
        for record in records:
            await insert_all(store, record)
        everything = await changes_after(store)
        pages: list[Change] = []
        after = 0
        while True:
            async with store.transaction(write=False) as tx:
                page = await tx.list_changes(after, ("agent",), limit=2)
            if not page:
                break
            pages += page
            after = page[-1].sequence
        sessions = await changes_after(store, everything[2].sequence, "session")
        return everything, pages, [c.record.slug for c in sessions]

    everything, agent_pages, session_slugs = run(scenario())
    assert [c.record.slug for c in everything] == [r.slug for r in records]
    assert agent_pages == [c for c in everything if c.record.kind == "agent"]
    assert session_slugs == ["s-0", "s-1", "s-2"]


def test_reading_changes_after_a_compacted_sequence_is_failed_precondition(
    store: Store, run: Run
) -> None:
    async def scenario() -> tuple[int, int, list[str]]:
        for n in range(5):
            await insert_all(store, make_record(f"r-{n}"))
        everything = await changes_after(store)
        async with store.transaction() as tx:
            horizon = await tx.compact_changes(keep=2)
        kept = await changes_after(store, horizon)
        return everything[2].sequence, horizon, [c.record.slug for c in kept]

    third, horizon, kept = run(scenario())
    assert horizon == third
    assert kept == ["r-3", "r-4"]
    with pytest.raises(FailedPrecondition, match=r"too old.*list again") as raised:
        run(changes_after(store, horizon - 1))
    assert raised.value.facts["oldest_resource_version"] == str(horizon)
    # Compaction never loses the numbering: the newest sequence stays.
    assert run(_newest(store)) == horizon + 2


def test_log_compacts_itself_and_never_reuses_a_sequence(
    store: Store, run: Run, tmp_path: Path
) -> None:
    small = _store_like(store, tmp_path, changes_kept=3)
    total = COMPACTION_EVERY + 5

    async def scenario() -> tuple[list[Change], int]:
        await small.open()
        try:
            for n in range(total):
                await insert_all(small, make_record(f"r-{n}"))
            async with small.transaction(write=False) as tx:
                horizon_before_more = await tx.newest_change_sequence()
                kept = await tx.list_changes(COMPACTION_EVERY - 3)
            return kept, horizon_before_more
        finally:
            await small.close()

    kept, newest = run(scenario())
    assert newest == total
    # The write that reached sequence 100 dropped all but the newest 3 before it.
    assert [c.sequence for c in kept] == list(range(COMPACTION_EVERY - 2, total + 1))
    with pytest.raises(FailedPrecondition):
        run(_changes_of_reopened(small, COMPACTION_EVERY - 4))


async def _changes_of_reopened(store: Store, after: int) -> list[Change]:
    await store.open()
    try:
        return await changes_after(store, after)
    finally:
        await store.close()


def _store_like(store: Store, tmp_path: Path, **options: Any) -> Store:
    """A second store of the same backend and database as `store`, with other options."""
    if isinstance(store, SqliteStore):
        return SqliteStore(store.path, **options)
    assert isinstance(store, PostgresStore)
    return PostgresStore(store._conninfo, **options)


def test_committed_changes_notify_the_change_signal(store: Store, run: Run) -> None:
    async def scenario() -> tuple[bool, bool]:
        before = store.change_signal.next_change()
        async with store.transaction(write=False) as tx:
            await tx.list(ListQuery("agent"))
        is_set_by_read = before.is_set()
        await insert_all(store, make_record("signalled"))
        return is_set_by_read, before.is_set()

    assert run(scenario()) == (False, True)


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


# --- PostgreSQL-specific: the database, its migrations, URLs, connections -------------------


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
