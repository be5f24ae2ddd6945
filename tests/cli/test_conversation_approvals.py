"""The conversation lines of tool calls a person decides: asked, decided, run,
the same live (from the events) and on replay (from the recorded state)."""

from __future__ import annotations

import io

from google.protobuf import struct_pb2
from rich.console import Console

from stigmer.api.v1 import execution_pb2
from stigmer.cli.conversation import ConversationPrinter
from stigmer.resources.execution_events import (
    COMPLETED,
    TERMINATED,
    WAITING_FOR_APPROVAL,
    apply_event,
    message_event,
    phase_event,
    tool_call_event,
)

Event = execution_pb2.ExecutionEvent


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, highlight=False, soft_wrap=True), out


def _call(
    status: int, *, approval: execution_pb2.ToolApproval | None = None
) -> execution_pb2.ToolCall:
    args = struct_pb2.Struct()
    args.update({"a": 2, "b": 3})
    call = execution_pb2.ToolCall(
        id="call_1",
        name="add",
        server="calc",
        args=args,
        status=status,  # type: ignore[arg-type]
        requires_approval=True,
    )
    if approval is not None:
        call.approval.CopyFrom(approval)
    if status in (execution_pb2.TOOL_CALL_STATUS_RUNNING, execution_pb2.TOOL_CALL_STATUS_COMPLETED):
        call.started_at.GetCurrentTime()
    if status == execution_pb2.TOOL_CALL_STATUS_COMPLETED:
        call.result = "5"
    return call


def _gated_run(approval: execution_pb2.ToolApproval) -> list[Event]:
    human = execution_pb2.ExecutionMessage(type=execution_pb2.MESSAGE_TYPE_HUMAN, content="2 + 3?")
    asks = execution_pb2.ExecutionMessage(
        type=execution_pb2.MESSAGE_TYPE_AI, content="Adding.", tool_call_ids=["call_1"]
    )
    pending = execution_pb2.PendingApproval(tool_call_id="call_1", tool="add", server="calc")
    pending.args.update({"a": 2, "b": 3})
    is_run = approval.action in (
        execution_pb2.APPROVAL_ACTION_APPROVE,
        execution_pb2.APPROVAL_ACTION_APPROVE_ALL,
    )
    result = execution_pb2.ExecutionMessage(
        type=execution_pb2.MESSAGE_TYPE_TOOL, tool_call_id="call_1"
    )
    answer = execution_pb2.ExecutionMessage(type=execution_pb2.MESSAGE_TYPE_AI, content="It is 5.")
    events = [
        message_event(human),
        message_event(asks),
        tool_call_event(_call(execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL)),
        Event(approval_requested=pending),
        phase_event(WAITING_FOR_APPROVAL),
        Event(approval_decided=Event.ApprovalDecided(tool_call_id="call_1", approval=approval)),
        phase_event(execution_pb2.EXECUTION_PHASE_IN_PROGRESS),
    ]
    if is_run:
        events += [
            tool_call_event(_call(execution_pb2.TOOL_CALL_STATUS_RUNNING, approval=approval)),
            tool_call_event(_call(execution_pb2.TOOL_CALL_STATUS_COMPLETED, approval=approval)),
        ]
    else:
        events.append(
            tool_call_event(_call(execution_pb2.TOOL_CALL_STATUS_REJECTED, approval=approval))
        )
    return [*events, message_event(result), message_event(answer), phase_event(COMPLETED)]


def _printed_live(events: list[Event]) -> list[str]:
    console, out = _console()
    printer = ConversationPrinter(console)
    printer.events(events)
    return out.getvalue().splitlines()


def _printed_replay(events: list[Event]) -> list[str]:
    state = execution_pb2.AgentExecution()
    for sequence, event in enumerate(events, start=1):
        apply_event(state, event, sequence)
    console, out = _console()
    ConversationPrinter(console).snapshot(state)
    return out.getvalue().splitlines()


def test_an_approved_call_prints_asked_decided_run_and_result_live_and_on_replay() -> None:
    approval = execution_pb2.ToolApproval(
        action=execution_pb2.APPROVAL_ACTION_APPROVE, decided_by="local"
    )
    events = _gated_run(approval)

    live = _printed_live(events)

    assert live == [
        "you: 2 + 3?",
        "agent: Adding.",
        '  tool add({"a":2,"b":3}) waits for approval',
        "  tool add approved by local",
        '  tool add({"a":2,"b":3})',
        "  tool add → 5",
        "agent: It is 5.",
    ]
    assert _printed_replay(events) == live


def test_a_rejected_call_prints_the_comment_and_no_run() -> None:
    approval = execution_pb2.ToolApproval(
        action=execution_pb2.APPROVAL_ACTION_REJECT, decided_by="local", comment="not now"
    )
    events = _gated_run(approval)

    live = _printed_live(events)

    assert live[2:4] == [
        '  tool add({"a":2,"b":3}) waits for approval',
        "  tool add rejected by local: not now",
    ]
    assert not any(line == '  tool add({"a":2,"b":3})' for line in live)
    assert _printed_replay(events) == live


def test_an_approval_request_seen_before_its_call_prints_one_line() -> None:
    pending = execution_pb2.PendingApproval(tool_call_id="call_1", tool="add", server="calc")
    pending.args.update({"a": 2, "b": 3})
    events = [
        Event(approval_requested=pending),
        tool_call_event(_call(execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL)),
    ]

    assert _printed_live(events) == ['  tool add({"a":2,"b":3}) waits for approval']


def test_a_call_still_waiting_when_the_execution_is_terminated_ends_interrupted() -> None:
    events = [
        tool_call_event(_call(execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL)),
        phase_event(TERMINATED),
    ]

    assert _printed_live(events)[-1] == "  tool add interrupted"
