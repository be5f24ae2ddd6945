"""Usage records on every backend: one per (execution, call), and sums by
agent, model and day, filtered by agent, session and time."""

from __future__ import annotations

from dataclasses import replace

from stigmer.store.base import Store
from stigmer.store.usage_records import UsageQuery, UsageRecord, UsageSum
from tests.store.conftest import RunCoroutine

CALL = UsageRecord(
    execution_id="aex-1",
    call_id="mc-1",
    org="local",
    agent_id="agt-a",
    session_id="ses-1",
    sub_agent="",
    provider="openai",
    model="gpt-4o",
    day="2026-12-01",
    at=1_796_083_200.0,
    input_tokens=1000,
    output_tokens=100,
    cached_tokens=400,
    reasoning_tokens=30,
    duration_ms=250,
    cost_micros=2400,
    price_input_micros=2_000_000,
    price_output_micros=10_000_000,
    price_cached_micros=500_000,
)


def test_a_call_recorded_twice_is_one_record(store: Store, run: RunCoroutine) -> None:
    async def scenario() -> tuple[bool, bool, list[UsageSum]]:
        async with store.transaction() as tx:
            first = await tx.insert_usage(CALL)
        async with store.transaction() as tx:
            again = await tx.insert_usage(replace(CALL, input_tokens=5))
        async with store.transaction(write=False) as tx:
            return first, again, await tx.sum_usage(UsageQuery(org="local"), None)

    first, again, total = run(scenario())
    assert (first, again) == (True, False)
    assert total == [UsageSum("", 1, 1000, 100, 400, 30, 2400, 1)]


def test_sums_group_by_agent_model_and_day_and_filter(store: Store, run: RunCoroutine) -> None:
    calls = [
        CALL,
        replace(CALL, call_id="mc-2", model="claude-sonnet-4", cost_micros=100),
        replace(CALL, execution_id="aex-2", call_id="mc-1", day="2026-12-02", at=CALL.at + 86400),
        replace(CALL, execution_id="aex-3", agent_id="agt-b", session_id="ses-2", cost_micros=7),
        replace(CALL, execution_id="aex-4", org="other"),
    ]

    async def scenario() -> dict[str, list[UsageSum]]:
        async with store.transaction() as tx:
            for call in calls:
                assert await tx.insert_usage(call)
        async with store.transaction(write=False) as tx:
            local = UsageQuery(org="local")
            return {
                "agents": await tx.sum_usage(local, "agent_id"),
                "models": await tx.sum_usage(local, "model"),
                "days": await tx.sum_usage(UsageQuery(org="local", agent_id="agt-a"), "day"),
                "since": await tx.sum_usage(UsageQuery(org="local", since=CALL.at + 1), None),
                "session": await tx.sum_usage(UsageQuery(org="local", session_id="ses-2"), None),
            }

    sums = run(scenario())
    assert [(s.key, s.model_calls, s.cost_micros, s.executions) for s in sums["agents"]] == [
        ("agt-a", 3, 4900, 2),
        ("agt-b", 1, 7, 1),
    ]
    assert [(s.key, s.model_calls) for s in sums["models"]] == [
        ("claude-sonnet-4", 1),
        ("gpt-4o", 3),
    ]
    assert [(s.key, s.model_calls) for s in sums["days"]] == [
        ("2026-12-01", 2),
        ("2026-12-02", 1),
    ]
    assert [(s.model_calls, s.input_tokens) for s in sums["since"]] == [(1, 1000)]
    assert [(s.model_calls, s.cost_micros) for s in sums["session"]] == [(1, 7)]
