"""Tool approvals end to end, on both engines: a call the tool policy asks
about waits for a person, holds nothing while it waits, and the execution
continues from its recorded conversation once every call of the turn is
decided. What the model reads next is asserted on the scripted model's
recorded requests."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest

import stigmer
from stigmer.api.v1 import execution_pb2, run_policy_pb2
from stigmer.client import Client
from stigmer.resources.execution_events import COMPLETED, WAITING_FOR_APPROVAL
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import gated_tools_agent
from tests.executions.approvals import (
    APPROVE,
    APPROVE_ALL,
    EDIT,
    REJECT,
    SKIP,
    asked_call_ids,
    create_execution,
    holds_nothing,
    status_code_of,
    submit,
    tool_results_of,
    wait_for_approvals,
)
from tests.waiting import wait_for_end, wait_until

SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def call_of(execution: execution_pb2.AgentExecution, call_id: str) -> execution_pb2.ToolCall:
    (call,) = [c for c in execution.status.tool_calls if c.id == call_id]
    return call


def test_reject_with_a_comment_is_the_tool_result_the_model_reads(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(
        Reply(content="Let me add.", tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}, id="c1"),)),
        Reply(content="I could not add."),
    )
    started = client.run("careful", "What is 2 + 3?")
    waiting = wait_for_approvals(client, started.metadata.id)
    (pending,) = waiting.status.pending_approvals
    assert (pending.tool_call_id, pending.tool, pending.server) == ("c1", "add", "calc")
    assert dict(pending.args) == {"a": 2, "b": 3}
    assert pending.model_text == "Let me add."
    assert pending.requested_at.seconds > 0
    assert call_of(waiting, "c1").status == execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL
    assert call_of(waiting, "c1").requires_approval
    assert len(model.requests) == 1
    wait_until(
        lambda: holds_nothing(server, started.metadata.id),
        what="the waiting execution to hold no lease and no worker slot",
    )

    decided = submit(server.address, started.metadata.id, "c1", REJECT, comment="not now")
    assert call_of(decided, "c1").status == execution_pb2.TOOL_CALL_STATUS_REJECTED
    final = wait_for_end(client, started.metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    call = call_of(final, "c1")
    assert call.status == execution_pb2.TOOL_CALL_STATUS_REJECTED
    assert (call.approval.action, call.approval.decided_by) == (REJECT, "local")
    assert call.approval.comment == "not now"
    assert not final.status.pending_approvals
    after = model.requests[1]
    assert tool_results_of(after) == {"c1": "not now"}
    assert asked_call_ids(after) == ["c1"]
    assert final.status.messages[-1].content == "I could not add."
    replayed = [u.event for u in client.subscribe(started.metadata.id, after_sequence=1)]
    changes = [e.WhichOneof("change") for e in replayed]
    assert changes.count("approval_requested") == 1
    assert changes.count("approval_decided") == 1
    decided_event = next(e for e in replayed if e.WhichOneof("change") == "approval_decided")
    assert decided_event.approval_decided.tool_call_id == "c1"
    assert decided_event.approval_decided.approval.comment == "not now"


@SQLITE_ONLY
def test_two_gated_calls_wait_together_and_continue_with_both_decisions(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent(ask=("calc/add", "calc/echo")))
    model.add(
        Reply(
            tool_calls=(
                ToolCallStep("add", {"a": 1, "b": 2}, id="first"),
                ToolCallStep("pid", {}, id="free"),
                ToolCallStep("echo", {"text": "hi"}, id="second"),
            )
        ),
        Reply(content="done"),
    )
    started = client.run("careful", "go")
    execution_id = started.metadata.id
    waiting = wait_for_approvals(client, execution_id, 2)
    # The call no rule names ran before the execution stopped.
    assert call_of(waiting, "free").status == execution_pb2.TOOL_CALL_STATUS_COMPLETED
    assert {a.tool_call_id for a in waiting.status.pending_approvals} == {"first", "second"}

    half = submit(server.address, execution_id, "first", APPROVE)
    assert half.status.phase == WAITING_FOR_APPROVAL
    assert [a.tool_call_id for a in half.status.pending_approvals] == ["second"]
    assert client.get_execution(execution_id).status.phase == WAITING_FOR_APPROVAL
    assert len(model.requests) == 1

    submit(server.address, execution_id, "second", SKIP)
    final = wait_for_end(client, execution_id)

    assert final.status.phase == COMPLETED, final.status.error
    assert call_of(final, "first").result == "3"
    assert call_of(final, "second").status == execution_pb2.TOOL_CALL_STATUS_SKIPPED
    assert len(model.requests) == 2
    results = tool_results_of(model.requests[1])
    assert set(results) == {"first", "free", "second"}
    assert results["first"] == "3"
    assert "skipped" in results["second"]
    assert sorted(asked_call_ids(model.requests[1])) == ["first", "free", "second"]


@SQLITE_ONLY
def test_approve_all_approves_the_later_calls_of_that_tool(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 1}, id="one"),)),
        Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 2}, id="two"),)),
        Reply(content="2 and 4"),
    )
    started = client.run("careful", "go")
    wait_for_approvals(client, started.metadata.id)

    submit(server.address, started.metadata.id, "one", APPROVE_ALL)
    final = wait_for_end(client, started.metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    later = call_of(final, "two")
    assert later.result == "4"
    assert later.requires_approval
    assert (later.approval.action, later.approval.decided_by) == (APPROVE_ALL, "local")
    assert len(model.requests) == 3


@SQLITE_ONLY
def test_edit_runs_with_the_edited_arguments_and_bad_ones_are_invalid(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}, id="c1"),)),
        Reply(content="11"),
    )
    started = client.run("careful", "go")
    execution_id = started.metadata.id
    wait_for_approvals(client, execution_id)

    with pytest.raises(grpc.RpcError) as refused:
        submit(server.address, execution_id, "c1", EDIT, edited_args={"a": "ten", "b": 1})
    assert status_code_of(refused.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "edited_args.a" in str(refused.value.details())  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as missing:
        submit(server.address, execution_id, "c1", EDIT)
    assert status_code_of(missing.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert client.get_execution(execution_id).status.phase == WAITING_FOR_APPROVAL

    submit(server.address, execution_id, "c1", EDIT, edited_args={"a": 10, "b": 1})
    final = wait_for_end(client, execution_id)

    assert final.status.phase == COMPLETED, final.status.error
    call = call_of(final, "c1")
    assert call.result == "11"
    assert dict(call.args) == {"a": 2, "b": 3}
    assert dict(call.approval.edited_args) == {"a": 10, "b": 1}
    assert tool_results_of(model.requests[1]) == {"c1": "11"}


@SQLITE_ONLY
def test_decisions_are_idempotent_conflicts_fail_and_unknown_calls_are_invalid(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent(ask=("calc/add", "calc/echo")))
    model.add(
        Reply(
            tool_calls=(
                ToolCallStep("add", {"a": 1, "b": 2}, id="first"),
                ToolCallStep("echo", {"text": "x"}, id="second"),
            )
        ),
        Reply(content="done"),
    )
    started = client.run("careful", "go")
    execution_id = started.metadata.id
    wait_for_approvals(client, execution_id, 2)

    once = submit(server.address, execution_id, "first", REJECT, comment="no")
    twice = submit(server.address, execution_id, "first", REJECT, comment="no")
    assert twice.metadata.version == once.metadata.version
    assert twice.status.last_sequence == once.status.last_sequence
    with pytest.raises(grpc.RpcError) as conflict:
        submit(server.address, execution_id, "first", APPROVE)
    assert status_code_of(conflict.value) == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as unknown:
        submit(server.address, execution_id, "nope", APPROVE)
    assert status_code_of(unknown.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "tool_call_id" in str(unknown.value.details())  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as no_action:
        submit(server.address, execution_id, "second", 0)
    assert status_code_of(no_action.value) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as gone:
        submit(server.address, "aex-missing", "first", APPROVE)
    assert status_code_of(gone.value) == grpc.StatusCode.NOT_FOUND

    submit(server.address, execution_id, "second", APPROVE)
    final = wait_for_end(client, execution_id)
    assert final.status.phase == COMPLETED
    with pytest.raises(grpc.RpcError) as ended:
        submit(server.address, execution_id, "second", SKIP)
    assert status_code_of(ended.value) == grpc.StatusCode.FAILED_PRECONDITION
    # The same decision again is still the no-op it was.
    again = submit(server.address, execution_id, "second", APPROVE)
    assert again.status.phase == COMPLETED


@SQLITE_ONLY
def test_denied_tools_are_never_offered_and_destructive_ones_are_asked_about(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent(ask=("calc/add",), deny=("calc/crash", "calc/f*")))
    model.add(
        Reply(tool_calls=(ToolCallStep("discard", {"name": "notes"}, id="d1"),)),
        Reply(content="kept"),
    )
    started = client.run("careful", "go")
    waiting = wait_for_approvals(client, started.metadata.id)

    offered = {tool["function"]["name"] for tool in model.requests[0]["tools"]}
    assert "crash" not in offered and "fail" not in offered
    assert {"add", "echo", "discard"} <= offered
    assert waiting.status.pending_approvals[0].tool == "discard"
    submit(server.address, started.metadata.id, "d1", SKIP)
    assert wait_for_end(client, started.metadata.id).status.phase == COMPLETED


@SQLITE_ONLY
def test_a_new_message_to_a_waiting_session_queues_behind_it(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 1}, id="c1"),)),
        Reply(content="2"),
        Reply(content="second answer"),
    )
    first = client.run("careful", "go")
    wait_for_approvals(client, first.metadata.id)
    second = client.run(None, "and then?", session=first.spec.session_id)

    wait_until(lambda: len(model.requests) >= 1, what="the first model call")
    assert (
        client.get_execution(second.metadata.id).status.phase
        == execution_pb2.EXECUTION_PHASE_PENDING
    )
    assert len(model.requests) == 1
    submit(server.address, first.metadata.id, "c1", APPROVE)

    assert wait_for_end(client, first.metadata.id).status.phase == COMPLETED
    assert wait_for_end(client, second.metadata.id).status.phase == COMPLETED
    # The second run's memory holds the first one's decided call and its result.
    assert tool_results_of(model.requests[2]) == {"c1": "2"}


@SQLITE_ONLY
def test_an_unanswered_approval_is_skipped_after_the_agents_timeout(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    timeout = "\n  approval_timeout: {seconds: 1, on_timeout: APPROVAL_TIMEOUT_ACTION_SKIP}"
    client.apply(gated_tools_agent(extra=timeout))
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 1}, id="c1"),)),
        Reply(content="skipped it"),
    )
    started = client.run("careful", "go")

    final = wait_for_end(client, started.metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    call = call_of(final, "c1")
    assert call.status == execution_pb2.TOOL_CALL_STATUS_SKIPPED
    assert (call.approval.action, call.approval.decided_by) == (SKIP, "timeout")
    assert "skipped" in tool_results_of(model.requests[1])["c1"]


@SQLITE_ONLY
def test_auto_approve_runs_asked_calls_and_the_executions_timeout_overrides_the_agents(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent(ask=("calc/add", "calc/echo"), deny=("calc/pid",)))
    agent = client.get("agent", "careful")
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 4, "b": 4}, id="c1"),)),
        Reply(content="8"),
    )
    automatic = create_execution(
        server.address,
        execution_pb2.AgentExecution(
            spec=execution_pb2.AgentExecutionSpec(
                agent_id=agent.metadata.id, message="go", auto_approve=True
            )
        ),
    )
    final = wait_for_end(client, automatic.metadata.id)
    assert final.status.phase == COMPLETED, final.status.error
    call = call_of(final, "c1")
    assert call.result == "8" and call.requires_approval
    assert (call.approval.action, call.approval.decided_by) == (APPROVE, "auto-approve")
    assert not any(
        u.event.WhichOneof("change") == "approval_requested"
        for u in client.subscribe(automatic.metadata.id, after_sequence=1)
    )

    model.add(
        Reply(tool_calls=(ToolCallStep("echo", {"text": "x"}, id="c2"),)),
        Reply(content="rejected"),
    )
    timed = create_execution(
        server.address,
        execution_pb2.AgentExecution(
            spec=execution_pb2.AgentExecutionSpec(
                agent_id=agent.metadata.id,
                message="go",
                approval_timeout=run_policy_pb2.ApprovalTimeout(
                    seconds=1, on_timeout=run_policy_pb2.APPROVAL_TIMEOUT_ACTION_REJECT
                ),
            )
        ),
    )
    final = wait_for_end(client, timed.metadata.id)
    call = call_of(final, "c2")
    assert call.status == execution_pb2.TOOL_CALL_STATUS_REJECTED
    assert call.approval.decided_by == "timeout"
    assert "approval_timeout" in tool_results_of(model.requests[3])["c2"]


@SQLITE_ONLY
def test_an_mcp_servers_policy_is_the_default_its_agents_rules_override(
    server: ServerThread, client: Client, model: ScriptedModel
) -> None:
    source = Path(stigmer.__file__).resolve().parents[1]
    client.apply(
        f"""\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {{name: calc}}
spec:
  stdio:
    command: {sys.executable}
    args: ["-m", "stigmer.testing.mcp_server"]
    env: {{PYTHONPATH: {source}}}
  tool_policy:
    ask: ["calc/*"]
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Referring}}
spec:
  instructions: You add numbers with the add tool and answer with the sum.
  tool_policy:
    allow: ["calc/echo"]
  mcp_servers:
    - ref: calc
"""
    )
    model.add(
        Reply(
            tool_calls=(
                ToolCallStep("echo", {"text": "free"}, id="e1"),
                ToolCallStep("add", {"a": 1, "b": 1}, id="a1"),
            )
        ),
        Reply(content="2"),
    )
    started = client.run("referring", "go")
    waiting = wait_for_approvals(client, started.metadata.id)

    assert [a.tool_call_id for a in waiting.status.pending_approvals] == ["a1"]
    assert call_of(waiting, "e1").result == "free"
    submit(server.address, started.metadata.id, "a1", APPROVE)
    final = wait_for_end(client, started.metadata.id)
    assert final.status.phase == COMPLETED, final.status.error
    assert tool_results_of(model.requests[1]) == {"e1": "free", "a1": "2"}
