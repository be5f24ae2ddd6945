"""Executions keep the store consistent: concurrent first runs, failed
creates, cancellation, reconnecting subscribers."""

from __future__ import annotations

import asyncio

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import AsyncClient, Client
from stigmer.resources.execution_events import CANCELLED, COMPLETED, IN_PROGRESS
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.backends import engine_options
from tests.control_plane.seeding import clear_default_instance_id, count
from tests.waiting import wait_for_end, wait_until

RUNS = 64


@pytest.mark.slow
def test_concurrent_first_runs_make_one_default_instance_and_all_succeed(
    server: ServerThread, client: Client, model: ScriptedModel, store_url: str
) -> None:
    (result,) = client.apply(PLAIN_AGENT)
    client.delete("agentinstance", "greeter-default")
    clear_default_instance_id(store_url, result.resource.metadata.id)
    model.reply_with(lambda request: Reply(content="hello"))

    async def run_all() -> list[str]:
        async def one() -> str:
            async with AsyncClient(server.address) as own:
                execution = await own.run("greeter", "hi")
                return execution.metadata.id

        return list(await asyncio.gather(*(one() for _ in range(RUNS))))

    ids = asyncio.run(run_all())

    assert len(set(ids)) == RUNS
    finals = [wait_for_end(client, execution_id) for execution_id in ids]
    assert [f.status.phase for f in finals] == [COMPLETED] * RUNS
    assert count(store_url, "AgentInstance") == 1
    instance = client.get("agentinstance", "greeter-default")
    assert {f.status.agent_instance_id for f in finals} == {instance.metadata.id}
    assert client.get("agent", "greeter").status.default_instance_id == instance.metadata.id
    assert count(store_url, "Session") == RUNS


def test_failing_persist_leaves_no_instance_and_no_session(
    client: Client, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stigmer.errors import Internal

    (result,) = client.apply(PLAIN_AGENT)
    client.delete("agentinstance", "greeter-default")
    clear_default_instance_id(store_url, result.resource.metadata.id)
    monkeypatch.setenv("STIGMER_FAIL_STEP", "execution.create/persist")

    with pytest.raises(Internal) as raised:
        client.run("greeter", "hi")

    assert raised.value.step == "execution.create/persist"
    assert count(store_url, "AgentInstance") == 0
    assert count(store_url, "Session") == 0
    assert count(store_url, "AgentExecution") == 0
    assert client.get("agent", "greeter").status.default_instance_id == ""


def test_cancel_during_a_slow_model_call_ends_cancelled(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="too late", delay_seconds=60))
    execution_id = client.run("greeter", "hi").metadata.id
    wait_until(
        lambda: (
            len(model.requests) == 1
            and client.get_execution(execution_id).status.phase == IN_PROGRESS
        ),
        what="the model call to start",
    )

    client.cancel(execution_id, "changed my mind")
    final = wait_for_end(client, execution_id)

    assert final.status.phase == CANCELLED, final.status.error
    assert "changed my mind" in final.status.error
    assert final.status.completed_at.seconds


def test_cancel_during_a_tool_call_interrupts_it(client: Client, model: ScriptedModel) -> None:
    client.apply(stdio_tools_agent())
    model.add(Reply(tool_calls=(ToolCallStep("sleep", {"seconds": 60}),)))
    execution_id = client.run("calculator", "wait a minute").metadata.id
    wait_until(
        lambda: any(
            c.status == execution_pb2.TOOL_CALL_STATUS_RUNNING
            for c in client.get_execution(execution_id).status.tool_calls
        ),
        what="the tool call to run",
    )

    client.cancel(execution_id)
    final = wait_for_end(client, execution_id)

    assert final.status.phase == CANCELLED, final.status.error
    (call,) = final.status.tool_calls
    assert call.status == execution_pb2.TOOL_CALL_STATUS_INTERRUPTED
    assert call.completed_at.seconds


def test_cancel_of_a_pending_execution_is_immediate(store_url: str, model: ScriptedModel) -> None:
    # No engine workers free: a server whose only worker is busy.
    options = engine_options(model.base_url, workers=1)
    with ServerThread(store_url, engine=options) as server, Client(server.address) as client:
        client.apply(PLAIN_AGENT)
        model.add(Reply(content="slow", delay_seconds=60))
        busy = client.run("greeter", "first").metadata.id
        wait_until(lambda: len(model.requests) == 1, what="the first model call")
        queued = client.run("greeter", "second").metadata.id
        cancelled = client.cancel(queued)
        assert cancelled.status.phase == CANCELLED
        client.cancel(busy)
        wait_for_end(client, busy)


def test_reconnecting_subscriber_gets_exactly_the_missing_updates(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    words = " ".join(f"word{i}" for i in range(40))
    model.add(Reply(content=words, delay_seconds=0.3))
    execution_id = client.run("greeter", "talk").metadata.id

    first_part = []
    for update in client.subscribe(execution_id):
        first_part.append(update.sequence)
        if len(first_part) == 3:
            break  # the client disconnects
    resumed = [u.sequence for u in client.subscribe(execution_id, after_sequence=first_part[-1])]

    final = wait_for_end(client, execution_id)
    last = final.status.last_sequence
    assert resumed == list(range(first_part[-1] + 1, last + 1))
    replayed = [u.sequence for u in client.subscribe(execution_id, after_sequence=1)]
    assert replayed == list(range(2, last + 1))
    rebuilt = execution_pb2.AgentExecution()
    from stigmer.resources.execution_events import apply_event

    for update in client.subscribe(execution_id, after_sequence=0):
        apply_event(rebuilt, update.event, update.sequence)
    assert rebuilt.status.messages[-1].content == words


def test_session_queue_runs_one_execution_at_a_time_and_reject_refuses(
    client: Client, model: ScriptedModel
) -> None:
    from stigmer.errors import FailedPrecondition

    client.apply(PLAIN_AGENT)
    model.add(Reply(content="first answer", delay_seconds=1.0), Reply(content="second answer"))
    first = client.run("greeter", "one")
    session = first.status.session_id
    second = client.run(None, "two", session=session)
    with pytest.raises(FailedPrecondition) as raised:
        client.run(None, "three", session=session, reject_if_busy=True)
    assert raised.value.facts["session_id"] == session
    wait_for_end(client, second.metadata.id)
    one, two = client.get_execution(first.metadata.id), client.get_execution(second.metadata.id)
    assert one.status.completed_at.ToDatetime() <= two.status.started_at.ToDatetime()
    # The second ran after the first ended, so the model saw the first exchange.
    assert model.requests[1]["messages"][-2]["content"] == "first answer"
