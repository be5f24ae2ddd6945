"""The store contract: every backend in STORE_BACKENDS (tests/conftest.py) must pass
this suite unchanged.

It calls every method of `Transaction` (store/base.py): resources, lists, the change
log, a resource's event log and its lease. Tests take `store` (open, empty) and `run`
(the test's event loop) and run inner coroutines with `run(...)`. What only one backend
has is tested in test_sqlite_store.py and test_postgres_store.py.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from dataclasses import replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest

from stigmer.errors import AlreadyExists, Conflict, FailedPrecondition, Internal, NotFound
from stigmer.resources.selectors import parse_selector
from stigmer.store.base import Change, Lease, ListQuery, Record, Store
from stigmer.store.changes import ADDED, COMPACTION_EVERY, DELETED, MODIFIED
from stigmer.store.urls import store_from_url
from tests.store.calls import (
    Run,
    StoreFactory,
    changes_after,
    count,
    delete,
    fetch,
    fetch_by_slug,
    insert_all,
    list_ids,
    make_full_record,
    make_record,
    update,
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


def test_update_renaming_onto_a_taken_slug_is_already_exists_naming_the_holder(
    store: Store, run: Run
) -> None:
    holder, renamed = make_record("taken"), make_record("renamed")
    run(insert_all(store, holder, renamed))

    async def rename_then_go_on() -> None:
        async with store.transaction() as tx:
            with pytest.raises(AlreadyExists) as raised:
                await tx.update(replace(renamed, slug="taken", version=2), 1)
            facts = (raised.value.kind, raised.value.slug, raised.value.existing_id)
            assert facts == ("agent", "taken", holder.id)
            # The failed statement leaves the transaction usable.
            await tx.update(replace(renamed, version=2, data=b"kept going"), 1)

    run(rename_then_go_on())

    assert run(fetch(store, holder)) == holder
    assert run(fetch(store, renamed)) == replace(renamed, version=2, data=b"kept going")


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
    store: Store, store_factory: StoreFactory, run: Run
) -> None:
    small = store_factory(changes_kept=3)
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


def test_committed_changes_notify_the_change_signal(store: Store, run: Run) -> None:
    async def scenario() -> tuple[bool, bool]:
        before = store.change_signal.next_change()
        async with store.transaction(write=False) as tx:
            await tx.list(ListQuery("agent"))
        is_set_by_read = before.is_set()
        await insert_all(store, make_record("signalled"))
        return is_set_by_read, before.is_set()

    assert run(scenario()) == (False, True)


def test_changes_with_limit_zero_read_none_but_still_check_the_horizon(
    store: Store, run: Run
) -> None:
    # Watchers ask "is my resource version still readable?" with limit=0.
    async def scenario() -> tuple[list[Change], int]:
        for n in range(3):
            await insert_all(store, make_record(f"r-{n}"))
        async with store.transaction() as tx:
            horizon = await tx.compact_changes(keep=1)
        async with store.transaction(write=False) as tx:
            return await tx.list_changes(horizon, limit=0), horizon

    nothing, horizon = run(scenario())
    assert nothing == []

    async def below_the_horizon() -> list[Change]:
        async with store.transaction(write=False) as tx:
            return await tx.list_changes(horizon - 1, limit=0)

    with pytest.raises(FailedPrecondition):
        run(below_the_horizon())


# --- a resource's event log ----------------------------------------------------------------


async def append(store: Store, resource_id: str, *events: tuple[int, bytes]) -> None:
    async with store.transaction() as tx:
        await tx.append_events(resource_id, events)


async def events_of(
    store: Store, resource_id: str, after: int = 0, limit: int | None = None
) -> list[tuple[int, bytes]]:
    async with store.transaction(write=False) as tx:
        if limit is None:
            return await tx.list_events(resource_id, after)
        return await tx.list_events(resource_id, after, limit)


def test_appended_events_are_listed_in_sequence_order_with_their_bytes(
    store: Store, run: Run
) -> None:
    raw = bytes(range(256))

    async def scenario() -> list[tuple[int, bytes]]:
        await append(store, "exec-1", (1, b"first"), (2, raw))
        # Within a batch and across batches, the sequence orders, not the arrival.
        await append(store, "exec-1", (5, b"fifth"), (3, b"third"))
        await append(store, "exec-1", (4, b""))
        return await events_of(store, "exec-1")

    assert run(scenario()) == [(1, b"first"), (2, raw), (3, b"third"), (4, b""), (5, b"fifth")]


def test_events_are_kept_per_resource(store: Store, run: Run) -> None:
    async def scenario() -> tuple[list[tuple[int, bytes]], ...]:
        await append(store, "exec-1", (1, b"one-1"), (2, b"one-2"))
        await append(store, "exec-2", (1, b"two-1"))
        return (
            await events_of(store, "exec-1"),
            await events_of(store, "exec-2"),
            await events_of(store, "exec-3"),
        )

    assert run(scenario()) == ([(1, b"one-1"), (2, b"one-2")], [(1, b"two-1")], [])


def test_event_pages_after_a_sequence_visit_every_event_once(store: Store, run: Run) -> None:
    logged = [(sequence, f"event-{sequence}".encode()) for sequence in range(1, 11)]
    run(append(store, "exec-1", *logged))

    pages = [run(events_of(store, "exec-1", limit=4))]
    while pages[-1] and len(pages) < 10:
        pages.append(run(events_of(store, "exec-1", after=pages[-1][-1][0], limit=4)))

    assert [len(page) for page in pages] == [4, 4, 2, 0]
    assert [event for page in pages for event in page] == logged
    assert run(events_of(store, "exec-1", after=7)) == logged[7:]
    assert run(events_of(store, "exec-1", after=10)) == []
    # A negative limit reads them all, as SQLite's LIMIT does.
    assert run(events_of(store, "exec-1", after=2, limit=-1)) == logged[2:]


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param([(1, b"again")], id="already-logged"),
        pytest.param([(2, b"second"), (2, b"twice")], id="twice-in-one-batch"),
    ],
)
def test_appending_a_sequence_already_logged_is_internal_and_keeps_the_first(
    store: Store, run: Run, batch: list[tuple[int, bytes]]
) -> None:
    async def scenario() -> tuple[str, list[tuple[int, bytes]]]:
        await append(store, "exec-1", (1, b"first"))
        async with store.transaction() as tx:
            with pytest.raises(Internal) as raised:
                await tx.append_events("exec-1", batch)
            # The transaction stays usable: the caller may still write and commit.
            await tx.append_events("exec-1", [(9, b"after the error")])
        return raised.value.message, await events_of(store, "exec-1")

    message, events = run(scenario())

    assert "already logged" in message
    assert (1, b"first") in events
    assert (9, b"after the error") in events
    assert (1, b"again") not in events
    assert [sequence for sequence, _ in events] == sorted({sequence for sequence, _ in events})


def test_appended_events_roll_back_or_are_discarded_with_their_transaction(
    store: Store, run: Run
) -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        await append(store, "exec-1", (1, b"kept"))
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.append_events("exec-1", [(2, b"rolled back")])
                raise RuntimeError("boom")
        async with store.transaction() as tx:
            await tx.append_events("exec-1", [(2, b"discarded")])
            assert await tx.list_events("exec-1", 0) == [(1, b"kept"), (2, b"discarded")]
            tx.discard()
        return await events_of(store, "exec-1")

    assert run(scenario()) == [(1, b"kept")]


# --- leases --------------------------------------------------------------------------------


async def put_leases(store: Store, *leases: Lease) -> None:
    async with store.transaction() as tx:
        for lease in leases:
            await tx.put_lease(lease)


async def lease_of(store: Store, resource_id: str) -> Lease | None:
    async with store.transaction(write=False) as tx:
        return await tx.get_lease(resource_id)


async def release(store: Store, resource_id: str) -> None:
    async with store.transaction() as tx:
        await tx.delete_lease(resource_id)


def test_put_lease_is_returned_by_get_lease_and_an_unleased_resource_has_none(
    store: Store, run: Run
) -> None:
    lease = Lease("exec-1", "worker-a", 1_800_000_000.25)
    run(put_leases(store, lease))

    assert run(lease_of(store, "exec-1")) == lease
    assert run(lease_of(store, "exec-2")) is None


def test_put_lease_on_a_leased_resource_replaces_owner_and_expiry(store: Store, run: Run) -> None:
    run(put_leases(store, Lease("exec-1", "worker-a", 100.0), Lease("exec-2", "worker-a", 100.0)))

    run(put_leases(store, Lease("exec-1", "worker-b", 250.5)))

    assert run(lease_of(store, "exec-1")) == Lease("exec-1", "worker-b", 250.5)
    assert run(lease_of(store, "exec-2")) == Lease("exec-2", "worker-a", 100.0)


def test_expired_leases_are_those_ending_before_now_soonest_first(store: Store, run: Run) -> None:
    leases = [
        Lease("exec-c", "worker-a", 30.0),
        Lease("exec-a", "worker-b", 10.0),
        Lease("exec-now", "worker-a", 35.0),  # expires at `now`: still held
        Lease("exec-d", "worker-b", 40.0),
        Lease("exec-b", "worker-a", 20.0),
    ]
    run(put_leases(store, *leases))

    async def expired(now: float, limit: int | None = None) -> list[str]:
        async with store.transaction(write=False) as tx:
            if limit is None:
                found = await tx.list_expired_leases(now)
            else:
                found = await tx.list_expired_leases(now, limit)
            return [lease.resource_id for lease in found]

    assert run(expired(35.0)) == ["exec-a", "exec-b", "exec-c"]
    assert run(expired(35.0, limit=2)) == ["exec-a", "exec-b"]
    assert run(expired(10.0)) == []
    assert run(expired(1e12)) == ["exec-a", "exec-b", "exec-c", "exec-now", "exec-d"]


def test_renewed_lease_is_no_longer_expired(store: Store, run: Run) -> None:
    run(put_leases(store, Lease("exec-1", "worker-a", 10.0)))
    run(put_leases(store, Lease("exec-1", "worker-a", 60.0)))

    async def expired_at(now: float) -> list[Lease]:
        async with store.transaction(write=False) as tx:
            return await tx.list_expired_leases(now)

    assert run(expired_at(30.0)) == []
    assert run(expired_at(61.0)) == [Lease("exec-1", "worker-a", 60.0)]


def test_delete_lease_releases_it_and_releasing_again_is_a_no_op(store: Store, run: Run) -> None:
    run(put_leases(store, Lease("exec-1", "worker-a", 10.0), Lease("exec-2", "worker-a", 10.0)))

    run(release(store, "exec-1"))
    run(release(store, "exec-1"))

    assert run(lease_of(store, "exec-1")) is None
    assert run(lease_of(store, "exec-2")) == Lease("exec-2", "worker-a", 10.0)


def test_lease_writes_roll_back_with_their_transaction(store: Store, run: Run) -> None:
    run(put_leases(store, Lease("exec-1", "worker-a", 10.0)))

    async def failing() -> None:
        async with store.transaction() as tx:
            await tx.put_lease(Lease("exec-1", "worker-b", 99.0))
            await tx.put_lease(Lease("exec-2", "worker-b", 99.0))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run(failing())

    assert run(lease_of(store, "exec-1")) == Lease("exec-1", "worker-a", 10.0)
    assert run(lease_of(store, "exec-2")) is None


# --- delete: the record, its event log and its lease ---------------------------------------


def test_delete_removes_the_records_events_and_lease_and_nothing_of_others(
    store: Store, run: Run
) -> None:
    doomed, kept = make_record("doomed", kind="execution"), make_record("kept", kind="execution")

    async def scenario() -> bool:
        await insert_all(store, doomed, kept)
        for record in (doomed, kept):
            await append(store, record.id, (1, b"one"), (2, b"two"))
            await put_leases(store, Lease(record.id, "worker-a", 10.0))
        return await delete(store, doomed)

    assert run(scenario()) is True
    assert run(events_of(store, doomed.id)) == []
    assert run(lease_of(store, doomed.id)) is None
    assert run(events_of(store, kept.id)) == [(1, b"one"), (2, b"two")]
    assert run(lease_of(store, kept.id)) == Lease(kept.id, "worker-a", 10.0)
    assert run(fetch(store, kept)) == kept


def test_delete_that_finds_no_record_leaves_events_and_lease_of_that_id(
    store: Store, run: Run
) -> None:
    record = make_record("execution", kind="execution")

    async def scenario() -> tuple[bool, bool]:
        await insert_all(store, record)
        await append(store, record.id, (1, b"one"))
        await put_leases(store, Lease(record.id, "worker-a", 10.0))
        async with store.transaction() as tx:
            wrong_kind = await tx.delete("agent", record.id)
            no_such_id = await tx.delete("execution", "no-such-id")
        return wrong_kind, no_such_id

    assert run(scenario()) == (False, False)
    assert run(fetch(store, record)) == record
    assert run(events_of(store, record.id)) == [(1, b"one")]
    assert run(lease_of(store, record.id)) == Lease(record.id, "worker-a", 10.0)


# --- artifacts (skill archives) ------------------------------------------------------------


def test_artifact_is_stored_once_per_owner_and_hash_and_read_back(store: Store, run: Run) -> None:
    data = bytes(range(256)) * 64  # binary, NULs included

    async def put_twice() -> list[bool]:
        async with store.transaction() as tx:
            first = await tx.put_artifact("skl-1", "a" * 64, data)
            second = await tx.put_artifact("skl-1", "a" * 64, b"other bytes")
        return [first, second]

    async def read(owner: str, digest: str) -> bytes | None:
        async with store.transaction(write=False) as tx:
            return await tx.get_artifact(owner, digest)

    assert run(put_twice()) == [True, False]
    assert run(read("skl-1", "a" * 64)) == data
    assert run(read("skl-2", "a" * 64)) is None
    assert run(read("skl-1", "b" * 64)) is None


def test_delete_artifacts_removes_only_the_owners(store: Store, run: Run) -> None:
    async def put_and_delete() -> int:
        async with store.transaction() as tx:
            for owner, digest in (("skl-1", "a"), ("skl-1", "b"), ("skl-2", "a")):
                await tx.put_artifact(owner, digest * 64, digest.encode())
        async with store.transaction() as tx:
            return await tx.delete_artifacts("skl-1")

    async def remaining() -> list[bytes | None]:
        async with store.transaction(write=False) as tx:
            return [
                await tx.get_artifact("skl-1", "a" * 64),
                await tx.get_artifact("skl-2", "a" * 64),
            ]

    assert run(put_and_delete()) == 2
    assert run(remaining()) == [None, b"a"]


def test_artifact_written_in_a_failed_transaction_is_gone(store: Store, run: Run) -> None:
    async def failing() -> None:
        async with store.transaction() as tx:
            await tx.put_artifact("skl-1", "c" * 64, b"half")
            raise RuntimeError("boom")

    async def read() -> bytes | None:
        async with store.transaction(write=False) as tx:
            return await tx.get_artifact("skl-1", "c" * 64)

    with pytest.raises(RuntimeError, match="boom"):
        run(failing())
    assert run(read()) is None
