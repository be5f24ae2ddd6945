"""The Temporal engine on a real Temporal dev server, with `stigmer worker`
processes: what only this engine has (workers that die, several workers,
workflow ids). The behaviours both engines share run on both in
tests/executions."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.engine.temporal_engine import TemporalEngine, TemporalOptions
from stigmer.errors import Unavailable
from stigmer.local_ports import free_local_port
from stigmer.resources.execution_events import COMPLETED, IN_PROGRESS
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.processes import child_pids, linux_only
from tests.temporal.conftest import StartWorker, StartWorkerProcess
from tests.waiting import wait_for_end, wait_until

# On SQLite only: tests/executions runs the engine on both stores; what is
# tested here (workers, workflows) is the same whatever the store.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("store_url", ["sqlite"], indirect=True),
]


def _engine(server: ServerThread) -> TemporalEngine:
    engine = server.server.engine
    assert isinstance(engine, TemporalEngine)
    return engine


def _activity_workers(temporal_address: str, execution_id: str) -> set[str]:
    """The identities of the workers that started the execution's activities,
    from the workflow's history in Temporal."""

    async def read() -> set[str]:
        temporal = await TemporalClient.connect(temporal_address)
        history = await temporal.get_workflow_handle(execution_id).fetch_history()
        return {
            event.activity_task_started_event_attributes.identity
            for event in history.events
            if event.HasField("activity_task_started_event_attributes")
        }

    return asyncio.run(read())


def _workflow_result(temporal_address: str, execution_id: str) -> object:
    async def result() -> object:
        temporal = await TemporalClient.connect(temporal_address)
        return await temporal.get_workflow_handle(execution_id).result()

    return asyncio.run(result())


def _tool_call_running(client: Client, execution_id: str) -> bool:
    calls = client.get_execution(execution_id).status.tool_calls
    return any(call.status == execution_pb2.TOOL_CALL_STATUS_RUNNING for call in calls)


def test_a_run_completes_with_its_tool_calls_and_leaves_a_consistent_store(
    client: Client, model: ScriptedModel, start_worker: StartWorker, server: ServerThread
) -> None:
    worker = start_worker()
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}),), content="Let me add."),
        Reply(content="2 + 3 = 5"),
    )

    final = wait_for_end(client, client.run("calculator", "What is 2 + 3?").metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert (call.name, call.result, call.status) == (
        "add",
        "5",
        execution_pb2.TOOL_CALL_STATUS_COMPLETED,
    )
    kinds = [message.type for message in final.status.messages]
    assert kinds == [
        execution_pb2.MESSAGE_TYPE_HUMAN,
        execution_pb2.MESSAGE_TYPE_AI,
        execution_pb2.MESSAGE_TYPE_TOOL,
        execution_pb2.MESSAGE_TYPE_AI,
    ]
    assert final.status.messages[1].content == "Let me add."
    assert final.status.messages[-1].content == "2 + 3 = 5"
    # The second model call saw the tool's result, as on the embedded engine.
    assert model.requests[1]["messages"][-1]["content"] == "5"
    assert final.status.usage.input_tokens == 20
    assert _activity_workers(_engine(server).address, final.metadata.id) == {worker.identity}
    assert list(client.check().violations) == []


def test_tool_calls_of_a_run_share_one_tool_server_which_stops_at_the_end(
    client: Client, model: ScriptedModel, start_worker: StartWorker
) -> None:
    start_worker()
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("pid", {}),)),
        Reply(tool_calls=(ToolCallStep("pid", {}),)),
        Reply(content="same process"),
    )

    final = wait_for_end(client, client.run("calculator", "which process?").metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    first, second = (call.result for call in final.status.tool_calls)
    assert first == second  # one process served both calls, as on the embedded engine
    wait_until(lambda: not _is_alive(int(first)), what="the tool server to stop")


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@linux_only
def test_cancel_reaches_the_running_tool_call_on_the_worker(
    client: Client, model: ScriptedModel, start_worker: StartWorker
) -> None:
    start_worker()  # on a thread here: its tool servers are this process's children
    client.apply(stdio_tools_agent())
    model.add(Reply(tool_calls=(ToolCallStep("sleep", {"seconds": 300}),)))
    before = child_pids()
    execution_id = client.run("calculator", "sleep a while").metadata.id
    wait_until(lambda: _tool_call_running(client, execution_id), what="the tool call to run")
    tool_servers = child_pids() - before
    assert tool_servers, "the tool call runs in a tool server process"

    client.cancel(execution_id, "no time")
    final = wait_for_end(client, execution_id)

    assert final.status.phase == execution_pb2.EXECUTION_PHASE_CANCELLED
    assert "no time" in final.status.error
    (call,) = final.status.tool_calls
    assert call.status == execution_pb2.TOOL_CALL_STATUS_INTERRUPTED
    # The activity itself stopped: its tool server is gone, not left sleeping.
    wait_until(lambda: not (child_pids() & tool_servers), what="the tool server to stop")


def test_a_repeated_start_returns_the_running_workflow(
    client: Client, model: ScriptedModel, start_worker: StartWorker, server: ServerThread
) -> None:
    start_worker()
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="slow answer", delay_seconds=1.5))
    execution_id = client.run("greeter", "hi").metadata.id
    wait_until(lambda: len(model.requests) == 1, what="the model call to start")
    engine = _engine(server)

    first = server.run(engine.start_or_find_workflow(execution_id))
    again = server.run(engine.start_or_find_workflow(execution_id))
    final = wait_for_end(client, execution_id)

    assert first == again
    assert final.status.phase == COMPLETED
    assert len(model.requests) == 1  # the model answered once: one workflow ran
    # Once it completed (just after recording the end), its id cannot start
    # a second run of the execution.
    assert _workflow_result(engine.address, execution_id) == "COMPLETED"
    with pytest.raises(WorkflowAlreadyStartedError):
        server.run(engine.start_or_find_workflow(execution_id))


def test_a_recovery_attempt_waits_for_the_earlier_run_to_close_then_starts_its_own(
    client: Client, model: ScriptedModel, start_worker: StartWorker, server: ServerThread
) -> None:
    # Recover is accepted once the store says FAILED, a moment before the
    # failed attempt's run closes; here that run is still busy when the next
    # attempt starts, which must not take it for its own.
    start_worker()
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="slow answer", delay_seconds=1.5))
    execution_id = client.run("greeter", "hi").metadata.id
    wait_until(lambda: len(model.requests) == 1, what="the model call to start")
    engine = _engine(server)
    earlier = server.run(engine.start_or_find_workflow(execution_id))

    recovered = server.run(engine.start_or_find_workflow(execution_id, attempt=1))
    # A server restarted after that start finds the same run again.
    again = server.run(engine.start_or_find_workflow(execution_id, attempt=1))

    assert recovered != earlier
    assert again == recovered
    assert wait_for_end(client, execution_id).status.phase == COMPLETED


def test_killing_the_worker_mid_tool_call_fails_the_call_and_the_run_completes(
    client: Client,
    model: ScriptedModel,
    start_worker_process: StartWorkerProcess,
    server: ServerThread,
) -> None:
    first = start_worker_process()
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("sleep", {"seconds": 300}),)),
        Reply(content="The sleep tool did not finish; I stopped there."),
    )
    execution_id = client.run("calculator", "sleep a while").metadata.id
    wait_until(lambda: _tool_call_running(client, execution_id), what="the tool call to run")

    first.kill()
    second = start_worker_process()
    final = wait_for_end(client, execution_id)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert call.status == execution_pb2.TOOL_CALL_STATUS_FAILED
    assert "worker running this tool call was lost" in call.error
    assert "not retried" in call.error
    # The model was told, as the tool's result, and answered.
    told = model.requests[1]["messages"][-1]
    assert told["role"] == "tool" and "was lost" in told["content"]
    assert final.status.messages[-1].content.startswith("The sleep tool did not finish")
    workers = _activity_workers(_engine(server).address, execution_id)
    assert first.identity in workers and second.identity in workers
    assert list(client.check().violations) == []


def test_two_workers_share_the_executions(
    client: Client, model: ScriptedModel, start_worker: StartWorker, server: ServerThread
) -> None:
    workers = [start_worker(), start_worker()]
    client.apply(PLAIN_AGENT)
    # Slow answers keep both workers busy at once.
    model.reply_with(lambda request: Reply(content="done", delay_seconds=0.3))

    started = [client.run("greeter", f"task {n}").metadata.id for n in range(12)]
    finals = [wait_for_end(client, execution_id) for execution_id in started]

    assert {final.status.phase for final in finals} == {COMPLETED}
    address = _engine(server).address
    seen = set().union(*(_activity_workers(address, e) for e in started))
    assert seen == {worker.identity for worker in workers}


def test_a_server_restart_adopts_running_workflows(
    store_url: str, model: ScriptedModel, start_worker: StartWorker, server: ServerThread
) -> None:
    with Client(server.address) as client:
        client.apply(PLAIN_AGENT)
        model.add(Reply(content="answered across a restart", delay_seconds=6))
        start_worker()
        execution_id = client.run("greeter", "hi").metadata.id
        wait_until(lambda: len(model.requests) == 1, what="the model call to start")
    options, port = server.options, server.server.port
    server.stop()

    # The worker reports to the same address; the answer comes after more
    # than a lease period, so the new server must renew the lease, not reap it.
    restarted = ServerThread(store_url, port=port, engine=options.engine, temporal=options.temporal)
    with restarted, Client(restarted.address) as client:
        assert client.get_execution(execution_id).status.phase == IN_PROGRESS
        final = wait_for_end(client, execution_id)
        assert final.status.phase == COMPLETED, final.status.error
        assert final.status.messages[-1].content == "answered across a restart"
        assert list(client.check().violations) == []


def _terminate(temporal_address: str, execution_id: str) -> WorkflowExecutionStatus | None:
    async def terminate() -> WorkflowExecutionStatus | None:
        temporal = await TemporalClient.connect(temporal_address)
        handle = temporal.get_workflow_handle(execution_id)
        await handle.terminate("an operator stopped it")
        return (await handle.describe()).status

    return asyncio.run(terminate())


def test_a_workflow_terminated_mid_tool_call_fails_its_execution(
    client: Client, model: ScriptedModel, start_worker: StartWorker, server: ServerThread
) -> None:
    start_worker()
    client.apply(stdio_tools_agent())
    model.add(Reply(tool_calls=(ToolCallStep("sleep", {"seconds": 300}),)))
    execution_id = client.run("calculator", "sleep a while").metadata.id
    wait_until(lambda: _tool_call_running(client, execution_id), what="the tool call to run")

    status = _terminate(_engine(server).address, execution_id)
    final = wait_for_end(client, execution_id)

    assert status == WorkflowExecutionStatus.TERMINATED
    assert final.status.phase == execution_pb2.EXECUTION_PHASE_FAILED
    assert "Temporal workflow ended (terminated)" in final.status.error
    assert list(client.check().violations) == []


def test_a_workflow_terminated_before_anything_happened_is_run_again(
    client: Client, model: ScriptedModel, start_worker: StartWorker, server: ServerThread
) -> None:
    start_worker()
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="never seen", delay_seconds=60), Reply(content="second try"))
    execution_id = client.run("greeter", "hi").metadata.id
    wait_until(lambda: len(model.requests) == 1, what="the model call to start")

    _terminate(_engine(server).address, execution_id)
    final = wait_for_end(client, execution_id)

    assert final.status.phase == COMPLETED, final.status.error
    assert final.status.messages[-1].content == "second try"
    # The new run sent only the user's message, not the first run's empty reply.
    assert [m["role"] for m in model.requests[1]["messages"]] == ["system", "user"]


def test_a_server_whose_temporal_does_not_answer_does_not_start(store_url: str) -> None:
    address = f"127.0.0.1:{free_local_port()}"
    temporal = TemporalOptions(address=address, connect_timeout_seconds=1)
    server = ServerThread(store_url, engine=EngineOptions(), temporal=temporal)

    with pytest.raises(Unavailable) as raised:
        server.start()

    assert f"cannot reach Temporal at {address}" in str(raised.value)


def test_executions_without_a_worker_wait_saying_so_and_run_when_one_starts(
    client: Client,
    model: ScriptedModel,
    start_worker: StartWorker,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="stigmer.engine.temporal_engine")
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="finally"))
    execution_id = client.run("greeter", "anyone there?").metadata.id

    wait_until(
        lambda: any("wait for a worker" in r.getMessage() for r in caplog.records),
        what="the server to say that no worker runs executions",
    )
    (warning,) = [r.getMessage() for r in caplog.records if "wait for a worker" in r.getMessage()]
    assert f"no `stigmer worker` polls task queue {task_queue}" in warning
    assert client.get_execution(execution_id).status.phase == IN_PROGRESS

    start_worker()
    final = wait_for_end(client, execution_id)
    assert final.status.phase == COMPLETED
    assert final.status.messages[-1].content == "finally"
