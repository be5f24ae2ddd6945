"""Run budgets, enforced by the server where events are recorded, on both
engines: a model that calls a tool on every turn is stopped at its tool
rounds or its cost, TERMINATED with a SYSTEM message naming the limit; the
model is told once at 80% of the cost cap, in the request the scripted
server receives; costs are exact integers of micro-dollars from the price
table."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stigmer.api.v1 import execution_pb2, run_policy_pb2
from stigmer.client import Client
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.engine.temporal_engine import TemporalOptions
from stigmer.resources.execution_events import TERMINATED
from stigmer.resources.prices import PriceTable, parse_prices
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from stigmer.testing.worker import WorkerThread
from tests.agents import stdio_tools_agent
from tests.backends import HEARTBEAT_SECONDS, engine_options, model_settings

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
# Dollars per million tokens for the scripted model: in 2, out 10, cached 0.50.
PRICES = PriceTable.with_overrides(parse_prices("scripted=2/10/0.5"))
# 600 uncached + 400 cached in, 100 out: (600*2 + 400*0.5 + 100*10) / 1e6 dollars.
COST_PER_CALL_MICROS = 2400


@pytest.fixture
def server(
    store_url: str, model: ScriptedModel, engine: str, request: pytest.FixtureRequest
) -> Iterator[ServerThread]:
    """As tests/executions/conftest.py's, with the price table above."""
    options = engine_options(model.base_url)
    if engine == "embedded":
        with ServerThread(store_url, engine=options, prices=PRICES) as running:
            yield running
        return
    temporal_server: TemporalDevServer = request.getfixturevalue("temporal_server")
    queue: str = request.getfixturevalue("task_queue")
    temporal = TemporalOptions(
        address=temporal_server.address, task_queue=queue, heartbeat_seconds=HEARTBEAT_SECONDS
    )
    with (
        ServerThread(store_url, engine=options, temporal=temporal, prices=PRICES) as running,
        WorkerThread(
            running.address,
            temporal_server.address,
            model_settings(model.base_url),
            task_queue=queue,
        ),
    ):
        yield running


def _always_adding(_: object) -> Reply:
    return Reply(
        tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}),),
        input_tokens=1000,
        cached_tokens=400,
        output_tokens=100,
        reasoning_tokens=30,
    )


def _system_messages(final: execution_pb2.AgentExecution) -> list[str]:
    return [m.content for m in final.status.messages if m.type == execution_pb2.MESSAGE_TYPE_SYSTEM]


def test_three_tool_rounds_then_the_fourth_ask_terminates_with_the_limit_named(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.reply_with(_always_adding)

    started = client.run(
        "calculator", "Add forever", run_config=run_policy_pb2.RunConfig(max_tool_rounds=3)
    )
    final = client.wait(started.metadata.id, timeout=120)

    assert final.status.phase == TERMINATED, final.status.error
    assert final.status.limit_reached == "max_tool_rounds"
    assert final.status.run_config.max_tool_rounds == 3
    statuses = [call.status for call in final.status.tool_calls]
    assert statuses == [execution_pb2.TOOL_CALL_STATUS_COMPLETED] * 3 + [
        execution_pb2.TOOL_CALL_STATUS_INTERRUPTED
    ]
    (message,) = _system_messages(final)
    assert "max_tool_rounds" in message and "limit of 3 tool rounds" in message
    assert "4th time" in message
    assert final.status.error == message
    assert final.status.tool_rounds == 4
    assert len(model.requests) == 4
    # The call that reached the limit is counted too.
    assert final.status.usage.model_calls == 4
    assert final.status.usage.cost_micros == 4 * COST_PER_CALL_MICROS


def test_the_cost_cap_warns_the_model_at_80_percent_then_terminates_with_exact_figures(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.reply_with(_always_adding)

    started = client.run(
        "calculator", "Add forever", run_config=run_policy_pb2.RunConfig(max_cost_usd=0.01)
    )
    final = client.wait(started.metadata.id, timeout=120)

    assert final.status.phase == TERMINATED, final.status.error
    assert final.status.limit_reached == "max_cost_usd"
    usage = final.status.usage
    # 2400, 4800, 7200, 9600 (>= 80% of 10000: the note), 12000 (>= the cap).
    assert (usage.model_calls, usage.cost_micros) == (5, 5 * COST_PER_CALL_MICROS)
    assert (usage.input_tokens, usage.cached_tokens) == (5000, 2000)
    assert (usage.output_tokens, usage.reasoning_tokens) == (500, 150)
    note, stop = _system_messages(final)
    assert "$0.009600, 96% of its limit of $0.010000" in note
    assert note == final.status.cost_note
    assert "cost $0.012000, reaching the limit of $0.010000 (max_cost_usd)" in stop
    systems = [request["messages"][0]["content"] for request in model.requests]
    assert len(systems) == 5
    assert all("[SYSTEM NOTE]" not in system for system in systems[:4])
    assert systems[4].endswith(f"[SYSTEM NOTE] {note}")


def test_a_tool_result_over_max_tool_result_chars_is_cut_and_the_model_reads_the_cut(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("repeat", {"text": "abcde", "times": 100}),)),
        Reply(content="Long."),
    )

    started = client.run(
        "calculator", "Repeat", run_config=run_policy_pb2.RunConfig(max_tool_result_chars=50)
    )
    final = client.wait(started.metadata.id, timeout=120)

    (call,) = final.status.tool_calls
    assert call.result == "abcde" * 10 + "\n[result cut: 450 of 500 characters left out]"
    assert model.requests[1]["messages"][-1]["content"] == call.result
