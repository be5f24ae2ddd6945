"""How an execution changes: one event at a time, applied in sequence.

The server records every change of a running execution as an
ExecutionEvent with a per-execution sequence number, applies it to the
stored execution and sends it to subscribers. Clients apply the same events
to the snapshot they received, with this same function, so what a client
shows is what the server stored.

The constructors of the events live here too, beside the function that
applies them, so that both engines, the server and `stigmer worker` build
them alike: each event carries the moment it happened, and a message added
carries the same moment as its own timestamp.
"""

from __future__ import annotations

from datetime import UTC, datetime

from stigmer.api.v1 import execution_pb2

Phase = execution_pb2.ExecutionPhase
PENDING = execution_pb2.EXECUTION_PHASE_PENDING
IN_PROGRESS = execution_pb2.EXECUTION_PHASE_IN_PROGRESS
COMPLETED = execution_pb2.EXECUTION_PHASE_COMPLETED
FAILED = execution_pb2.EXECUTION_PHASE_FAILED
CANCELLED = execution_pb2.EXECUTION_PHASE_CANCELLED
WAITING_FOR_APPROVAL = execution_pb2.EXECUTION_PHASE_WAITING_FOR_APPROVAL
PAUSED = execution_pb2.EXECUTION_PHASE_PAUSED
TERMINATED = execution_pb2.EXECUTION_PHASE_TERMINATED
TERMINAL_PHASES = frozenset({COMPLETED, FAILED, CANCELLED, TERMINATED})
ACTIVE_PHASES = frozenset({PENDING, IN_PROGRESS})
# A tool call in one of these has not ended; an execution that ends first
# settles it INTERRUPTED.
OPEN_TOOL_CALL_STATES = frozenset(
    {
        execution_pb2.TOOL_CALL_STATUS_PENDING,
        execution_pb2.TOOL_CALL_STATUS_RUNNING,
        execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL,
    }
)
# Phases in which an execution holds its session: a new message queues behind.
SESSION_OCCUPYING_PHASES = frozenset({IN_PROGRESS, WAITING_FOR_APPROVAL, PAUSED})
SKIPPED_RESULT = "a person skipped this tool call: it was not run"
REJECTED_RESULT = "a person rejected this tool call: it was not run"


def phase_name(phase: int) -> str:
    return execution_pb2.ExecutionPhase.Name(phase).removeprefix("EXECUTION_PHASE_")  # type: ignore[arg-type]


def is_terminal(execution: execution_pb2.AgentExecution) -> bool:
    return execution.status.phase in TERMINAL_PHASES


Event = execution_pb2.ExecutionEvent


def _stamped(event: Event) -> Event:
    event.at.FromDatetime(datetime.now(UTC))
    return event


def phase_event(phase: int, error: str = "") -> Event:
    return _stamped(Event(phase_changed=Event.PhaseChanged(phase=phase, error=error)))  # type: ignore[arg-type]


def message_event(message: execution_pb2.ExecutionMessage) -> Event:
    event = _stamped(Event(message_added=message))
    event.message_added.timestamp.CopyFrom(event.at)
    return event


def system_message_event(text: str) -> Event:
    return message_event(
        execution_pb2.ExecutionMessage(type=execution_pb2.MESSAGE_TYPE_SYSTEM, content=text)
    )


def message_delta_event(index: int, text: str) -> Event:
    return _stamped(Event(message_delta=Event.MessageDelta(index=index, text=text)))


def tool_call_event(call: execution_pb2.ToolCall) -> Event:
    return _stamped(Event(tool_call_updated=call))


def usage_event(input_tokens: int, output_tokens: int) -> Event:
    usage = execution_pb2.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return _stamped(Event(usage_added=usage))


def cancel_requested_event(reason: str) -> Event:
    return _stamped(Event(cancel_requested=Event.CancelRequested(reason=reason)))


def pause_requested_event(reason: str) -> Event:
    return _stamped(Event(pause_requested=Event.PauseRequested(reason=reason)))


def resumed_event(reason: str) -> Event:
    return _stamped(Event(resumed=Event.Resumed(reason=reason)))


def recovered_event(previous_error: str, recovered_by: str) -> Event:
    event = _stamped(Event())
    event.recovered.previous_error = previous_error
    event.recovered.recovered_by = recovered_by
    event.recovered.recovered_at.CopyFrom(event.at)
    return event


def approval_requested_event(approval: execution_pb2.PendingApproval) -> Event:
    return _stamped(Event(approval_requested=approval))


def approval_decided_event(tool_call_id: str, approval: execution_pb2.ToolApproval) -> Event:
    return _stamped(
        Event(approval_decided=Event.ApprovalDecided(tool_call_id=tool_call_id, approval=approval))
    )


def decided_result(approval: execution_pb2.ToolApproval) -> str:
    """What the model reads for a call a person skipped or rejected: a
    reject's comment, else a sentence saying what happened."""
    if approval.action == execution_pb2.APPROVAL_ACTION_REJECT:
        return approval.comment or REJECTED_RESULT
    if approval.comment:
        return f"{SKIPPED_RESULT} ({approval.comment})"
    return SKIPPED_RESULT


def apply_event(execution: execution_pb2.AgentExecution, event: Event, sequence: int) -> None:
    """Applies one event to the execution in place and records its sequence."""
    change = event.WhichOneof("change")
    status = execution.status
    moment = event.at.ToDatetime() if event.HasField("at") else None
    if change == "snapshot":
        execution.CopyFrom(event.snapshot)
    elif change == "phase_changed":
        _change_phase(status, event.phase_changed, moment)
    elif change == "message_added":
        status.messages.append(event.message_added)
    elif change == "message_delta":
        delta = event.message_delta
        if 0 <= delta.index < len(status.messages):
            status.messages[delta.index].content += delta.text
    elif change == "tool_call_updated":
        _upsert_tool_call(status, event.tool_call_updated)
    elif change == "usage_added":
        status.usage.input_tokens += event.usage_added.input_tokens
        status.usage.output_tokens += event.usage_added.output_tokens
    elif change == "cancel_requested":
        status.is_cancel_requested = True
    elif change == "pause_requested":
        status.is_pause_requested = True
    elif change == "resumed":
        status.is_pause_requested = False
    elif change == "recovered":
        # The execution goes on: its attempt keeps the error it had failed with.
        status.attempts.append(event.recovered)
        status.error = ""
        status.ClearField("completed_at")
    elif change == "approval_requested":
        _add_pending_approval(status, event.approval_requested)
    elif change == "approval_decided":
        _decide(status, event.approval_decided)
    status.last_sequence = max(status.last_sequence, sequence)


def _change_phase(
    status: execution_pb2.AgentExecutionStatus,
    change: Event.PhaseChanged,
    moment: datetime | None,
) -> None:
    before = status.phase
    status.phase = change.phase
    if change.error:
        status.error = change.error
    if change.phase == PAUSED:
        status.is_pause_requested = False
    if moment is None:
        return
    if change.phase == IN_PROGRESS:
        # A resumed or recovered execution keeps the moment it first started.
        if not status.HasField("started_at"):
            status.started_at.FromDatetime(moment)
    elif change.phase == PENDING and before == IN_PROGRESS:
        # Re-queued before anything happened: it has not really started.
        status.ClearField("started_at")
    elif change.phase in TERMINAL_PHASES:
        status.completed_at.FromDatetime(moment)
        del status.pending_approvals[:]
        if change.phase != COMPLETED:
            for call in status.tool_calls:
                if call.status in OPEN_TOOL_CALL_STATES:
                    call.status = execution_pb2.TOOL_CALL_STATUS_INTERRUPTED
                    call.completed_at.FromDatetime(moment)


def _upsert_tool_call(
    status: execution_pb2.AgentExecutionStatus, call: execution_pb2.ToolCall
) -> None:
    for existing in status.tool_calls:
        if existing.id == call.id:
            existing.CopyFrom(call)
            return
    status.tool_calls.append(call)
    # A call is first recorded right after the AI message that asked for it.
    for message in reversed(status.messages):
        if message.type == execution_pb2.MESSAGE_TYPE_AI:
            message.tool_call_ids.append(call.id)
            break


def _add_pending_approval(
    status: execution_pb2.AgentExecutionStatus, approval: execution_pb2.PendingApproval
) -> None:
    for existing in status.pending_approvals:
        if existing.tool_call_id == approval.tool_call_id:
            existing.CopyFrom(approval)
            return
    status.pending_approvals.append(approval)


_DECIDED_STATES = {
    execution_pb2.APPROVAL_ACTION_SKIP: execution_pb2.TOOL_CALL_STATUS_SKIPPED,
    execution_pb2.APPROVAL_ACTION_REJECT: execution_pb2.TOOL_CALL_STATUS_REJECTED,
}


def _decide(status: execution_pb2.AgentExecutionStatus, decided: Event.ApprovalDecided) -> None:
    """The call keeps the decision; a skipped or rejected one ends with the
    text the model will read, an approved one waits to run (PENDING)."""
    kept = [a for a in status.pending_approvals if a.tool_call_id != decided.tool_call_id]
    del status.pending_approvals[:]
    status.pending_approvals.extend(kept)
    for call in status.tool_calls:
        if call.id != decided.tool_call_id:
            continue
        call.approval.CopyFrom(decided.approval)
        ended = _DECIDED_STATES.get(decided.approval.action)
        if ended is None:
            call.status = execution_pb2.TOOL_CALL_STATUS_PENDING
            return
        call.status = ended
        call.result = decided_result(decided.approval)
        if decided.approval.HasField("decided_at"):
            call.completed_at.CopyFrom(decided.approval.decided_at)
        return
