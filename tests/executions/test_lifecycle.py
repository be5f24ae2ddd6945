"""Pause, resume, terminate and recover, on both engines and both stores:
what a person controlling a running agent sees, and that no tool call runs
twice."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest
from temporalio.client import WorkflowExecutionStatus

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.embedded import EmbeddedEngine
from stigmer.engine.temporal_engine import TemporalEngine
from stigmer.errors import FailedPrecondition, InvalidArgument, NotFound
from stigmer.resources.execution_events import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PAUSED,
    PENDING,
    TERMINATED,
)
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.lifecycle_calls import GatedReplies, lifecycle, refusal
from tests.waiting import wait_for_end, wait_until

pytestmark = pytest.mark.slow

ADD = ToolCallStep("add", {"a": 2, "b": 3}, id="call_add")
Gate = Callable[..., GatedReplies]


@pytest.fixture
def gate(model: ScriptedModel) -> Iterator[Gate]:
    """Scripts the model with gated answers; every gate opens at the end so
    no model thread is left waiting."""
    made: list[GatedReplies] = []

    def make(*replies: Reply, gated: tuple[int, ...] = ()) -> GatedReplies:
        replies_ = GatedReplies(model, list(replies), set(gated))
        made.append(replies_)
        return replies_

    yield make
    for replies in made:
        replies.open_all()


def _has_requests(model: ScriptedModel, count: int) -> bool:
    return len(model.requests) == count


def _work_stopped(server: ServerThread, execution_id: str) -> bool:
    engine = server.server.engine
    if isinstance(engine, EmbeddedEngine):
        return engine.running_count == 0
    assert isinstance(engine, TemporalEngine)
    handle = engine.client.get_workflow_handle(execution_id)
    description = server.run(handle.describe())
    return bool(description.status != WorkflowExecutionStatus.RUNNING)


def _phase(client: Client, execution_id: str) -> int:
    return client.get_execution(execution_id).status.phase


def _wait_phase(client: Client, execution_id: str, phase: int) -> execution_pb2.AgentExecution:
    wait_until(lambda: _phase(client, execution_id) == phase, what=f"phase {phase}")
    return client.get_execution(execution_id)


def test_pause_stops_before_the_tool_call_and_resume_runs_it_once(
    client: Client, server: ServerThread, model: ScriptedModel, gate: Gate
) -> None:
    client.apply(stdio_tools_agent())
    answers = gate(Reply(tool_calls=(ADD,), content="Adding."), Reply(content="5"), gated=(1,))
    execution_id = client.run("calculator", "2 + 3?").metadata.id
    wait_until(lambda: len(model.requests) == 1, what="the first model call")

    asked = lifecycle(server.address, "Pause", execution_id, "lunch")
    assert (asked.status.phase, asked.status.is_pause_requested) == (IN_PROGRESS, True)
    answers.open(1)
    paused = _wait_phase(client, execution_id, PAUSED)

    # Stopped between the model call and the tool call: the call never ran.
    (call,) = paused.status.tool_calls
    assert call.status == execution_pb2.TOOL_CALL_STATUS_PENDING
    assert not paused.status.is_pause_requested
    assert len(model.requests) == 1
    assert list(client.check().violations) == []  # paused: no lease, not lost

    resumed = lifecycle(server.address, "Resume", execution_id)
    assert resumed.status.phase in (PENDING, IN_PROGRESS)
    final = wait_for_end(client, execution_id)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert (call.id, call.result, call.status) == (
        "call_add",
        "5",
        execution_pb2.TOOL_CALL_STATUS_COMPLETED,
    )
    assert len(model.requests) == 2
    told = model.requests[1]["messages"][-1]
    assert (told["role"], told["tool_call_id"], told["content"]) == ("tool", "call_add", "5")
    assert final.status.messages[-1].content == "5"
    assert list(client.check().violations) == []


def test_cancel_and_terminate_end_a_paused_execution_and_its_waiting_work(
    client: Client, server: ServerThread, model: ScriptedModel, gate: Gate
) -> None:
    client.apply(stdio_tools_agent())
    answers = gate(Reply(tool_calls=(ADD,)), Reply(tool_calls=(ADD,)), gated=(1, 2))
    ids = []
    for number in (1, 2):
        execution_id = client.run("calculator", f"2 + 3, take {number}?").metadata.id
        wait_until(functools.partial(_has_requests, model, number), what=f"model call {number}")
        lifecycle(server.address, "Pause", execution_id)
        answers.open(number)
        _wait_phase(client, execution_id, PAUSED)
        ids.append(execution_id)
    cancelled_id, terminated_id = ids

    cancelled = client.cancel(cancelled_id, "not needed")
    terminated = lifecycle(server.address, "Terminate", terminated_id, "not needed either")

    assert (cancelled.status.phase, cancelled.status.error) == (CANCELLED, "not needed")
    assert (terminated.status.phase, terminated.status.error) == (TERMINATED, "not needed either")
    for ended in (cancelled, terminated):
        (call,) = ended.status.tool_calls
        assert call.status == execution_pb2.TOOL_CALL_STATUS_INTERRUPTED
    # On Temporal the paused workflows waited: they are gone too.
    for execution_id in ids:
        wait_until(
            functools.partial(_work_stopped, server, execution_id), what="the paused work to end"
        )
    assert [_phase(client, i) for i in ids] == [CANCELLED, TERMINATED]
    assert len(model.requests) == 2
    assert list(client.check().violations) == []


def test_a_pending_execution_pauses_at_once_and_is_not_taken_until_resumed(
    client: Client, server: ServerThread, model: ScriptedModel, gate: Gate
) -> None:
    client.apply(PLAIN_AGENT)
    answers = gate(Reply(content="first"), Reply(content="second"), gated=(1,))
    first = client.run("greeter", "one")
    wait_until(lambda: len(model.requests) == 1, what="the first model call")
    # Queued behind the first in the same session: PENDING.
    second_id = client.run(None, "two", session=first.status.session_id).metadata.id
    assert _phase(client, second_id) == PENDING

    paused = lifecycle(server.address, "Pause", second_id)
    assert paused.status.phase == PAUSED
    answers.open(1)
    assert wait_for_end(client, first.metadata.id).status.phase == COMPLETED
    assert _phase(client, second_id) == PAUSED
    assert len(model.requests) == 1

    lifecycle(server.address, "Resume", second_id)
    final = wait_for_end(client, second_id)
    assert final.status.phase == COMPLETED, final.status.error
    assert final.status.messages[-1].content == "second"


def test_resume_withdraws_a_pause_not_yet_honoured(
    client: Client, server: ServerThread, model: ScriptedModel, gate: Gate
) -> None:
    client.apply(stdio_tools_agent())
    answers = gate(Reply(tool_calls=(ADD,)), Reply(content="5"), gated=(1,))
    execution_id = client.run("calculator", "2 + 3?").metadata.id
    wait_until(lambda: len(model.requests) == 1, what="the first model call")

    lifecycle(server.address, "Pause", execution_id)
    withdrawn = lifecycle(server.address, "Resume", execution_id)
    assert (withdrawn.status.phase, withdrawn.status.is_pause_requested) == (IN_PROGRESS, False)
    answers.open(1)
    final = wait_for_end(client, execution_id)

    assert final.status.phase == COMPLETED, final.status.error
    assert [c.result for c in final.status.tool_calls] == ["5"]


def test_terminate_ends_a_running_tool_call_at_once_and_later_reports_are_refused(
    client: Client, server: ServerThread, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.add(Reply(tool_calls=(ToolCallStep("sleep", {"seconds": 300}),)))
    execution_id = client.run("calculator", "sleep a while").metadata.id
    wait_until(
        lambda: any(
            c.status == execution_pb2.TOOL_CALL_STATUS_RUNNING
            for c in client.get_execution(execution_id).status.tool_calls
        ),
        what="the tool call to run",
    )

    ended = lifecycle(server.address, "Terminate", execution_id, "runaway")

    # In the answer itself: nothing waited for the tool call.
    assert ended.status.phase == TERMINATED
    assert ended.status.error == "runaway"
    (call,) = ended.status.tool_calls
    assert call.status == execution_pb2.TOOL_CALL_STATUS_INTERRUPTED
    # The work stops, and what it reports as it goes (CANCELLED) is refused.
    wait_until(lambda: _work_stopped(server, execution_id), what="the work to stop")
    final = client.get_execution(execution_id)
    assert (final.status.phase, final.status.error) == (TERMINATED, "runaway")
    again = lifecycle(server.address, "Terminate", execution_id, "twice")
    assert (again.status.phase, again.metadata.version) == (TERMINATED, final.metadata.version)
    assert list(client.check().violations) == []


def test_recover_continues_a_failed_execution_without_running_its_completed_tool_call(
    client: Client, server: ServerThread, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ADD,), content="Adding."),
        Reply(status=400, content="the model is overloaded"),
        Reply(content="2 + 3 = 5"),
    )
    execution_id = client.run("calculator", "2 + 3?").metadata.id
    failed = wait_for_end(client, execution_id)
    assert failed.status.phase == FAILED
    (ran,) = failed.status.tool_calls
    assert ran.status == execution_pb2.TOOL_CALL_STATUS_COMPLETED

    recovered = lifecycle(server.address, "Recover", execution_id)
    assert recovered.status.phase in (PENDING, IN_PROGRESS)
    final = wait_for_end(client, execution_id)

    assert final.status.phase == COMPLETED, final.status.error
    assert final.status.error == ""
    (attempt,) = final.status.attempts
    assert "overloaded" in attempt.previous_error
    assert attempt.recovered_by == "local" and attempt.recovered_at.seconds
    # The tool call is the one of the first attempt, not run again.
    (call,) = final.status.tool_calls
    assert (call.id, call.result, call.started_at) == ("call_add", "5", ran.started_at)
    assert len(model.requests) == 3
    sent = model.requests[2]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2]["tool_calls"][0]["id"] == "call_add"
    assert (sent[3]["tool_call_id"], sent[3]["content"]) == ("call_add", "5")
    assert final.status.messages[-1].content == "2 + 3 = 5"
    assert list(client.check().violations) == []


@pytest.mark.parametrize("engine", ["embedded"])
def test_each_request_is_refused_from_a_phase_it_cannot_leave(
    client: Client, server: ServerThread, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="done"))
    done_id = wait_for_end(client, client.run("greeter", "hi").metadata.id).metadata.id

    for method in ("Pause", "Resume", "Terminate", "Recover"):
        error = refusal(server.address, method, done_id)
        assert isinstance(error, FailedPrecondition), (method, error)
        assert "it is COMPLETED" in str(error), method
    missing = refusal(server.address, "Pause", "aex-01jf0000000000000000000000")
    assert isinstance(missing, NotFound)
    empty = refusal(server.address, "Resume", "")
    assert isinstance(empty, InvalidArgument)
    assert [v.field for v in empty.violations] == ["id"]
    assert _phase(client, done_id) == COMPLETED


@pytest.mark.parametrize("engine", ["embedded"])
def test_pause_resume_and_recover_asked_again_record_nothing(
    client: Client, server: ServerThread, model: ScriptedModel, gate: Gate
) -> None:
    client.apply(PLAIN_AGENT)
    answers = gate(
        Reply(content="first"),
        Reply(status=400, content="refused"),
        Reply(content="second"),
        gated=(1, 3),
    )
    first = client.run("greeter", "one")
    wait_until(lambda: len(model.requests) == 1, what="the first model call")
    queued_id = client.run(None, "two", session=first.status.session_id).metadata.id

    paused = lifecycle(server.address, "Pause", queued_id)
    again = lifecycle(server.address, "Pause", queued_id)
    assert paused.status.phase == again.status.phase == PAUSED
    assert again.metadata.version == paused.metadata.version
    resumed = lifecycle(server.address, "Resume", queued_id)
    assert resumed.status.phase == PENDING
    still = lifecycle(server.address, "Resume", queued_id)
    assert still.metadata.version == resumed.metadata.version
    answers.open(1)
    assert wait_for_end(client, first.metadata.id).status.phase == COMPLETED
    assert wait_for_end(client, queued_id).status.phase == FAILED  # the model refused

    recovered = lifecycle(server.address, "Recover", queued_id)
    wait_until(lambda: len(model.requests) == 3, what="the recovered model call")
    twice = lifecycle(server.address, "Recover", queued_id)
    assert twice.status.phase == IN_PROGRESS
    assert len(twice.status.attempts) == len(recovered.status.attempts) == 1
    answers.open(3)
    final = wait_for_end(client, queued_id)
    assert final.status.phase == COMPLETED
    assert len(final.status.attempts) == 1
