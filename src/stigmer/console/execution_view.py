"""What the execution page shows, read off an AgentExecution.

The templates render these values and nothing else, so the page served at
first and the fragments the live stream sends later (live.py) come from the
same code: a reloaded page and a watched one show the same thing.

The timeline is read from timestamps the execution already records: a model
call runs from the step before it (the human message, or the last tool
result) until its AI message's tool calls start, or the next message, or the
end; a tool call runs from its started_at to its completed_at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

from stigmer.api.v1 import execution_pb2
from stigmer.resources.execution_events import (
    ACTIVE_PHASES,
    FAILED,
    PAUSED,
    TERMINAL_PHASES,
    WAITING_FOR_APPROVAL,
    phase_name,
)

MESSAGE_TYPES = {
    execution_pb2.MESSAGE_TYPE_HUMAN: "human",
    execution_pb2.MESSAGE_TYPE_AI: "ai",
    execution_pb2.MESSAGE_TYPE_TOOL: "tool",
    execution_pb2.MESSAGE_TYPE_SYSTEM: "system",
}
MESSAGE_LABELS = {"human": "You", "ai": "Agent", "tool": "Tool result", "system": "System"}


def moment(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime(UTC) if stamp.seconds or stamp.nanos else None


def clock_text(stamp: Timestamp) -> str:
    when = moment(stamp)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC") if when else ""


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def tool_status_name(status: int) -> str:
    return execution_pb2.ToolCallStatus.Name(status).removeprefix("TOOL_CALL_STATUS_")  # type: ignore[arg-type]


@dataclass(frozen=True)
class MessageView:
    index: int
    kind: str
    label: str
    content: str
    at: str
    tool_call_ids: tuple[str, ...]
    tool_call_id: str


@dataclass(frozen=True)
class ToolCallView:
    id: str
    name: str
    server: str
    args_json: str
    result: str
    error: str
    status: str
    duration: str
    requires_approval: bool
    decision: str


@dataclass(frozen=True)
class PendingApprovalView:
    tool_call_id: str
    tool: str
    server: str
    args_json: str
    model_text: str
    requested_at: str
    sub_agent: str


@dataclass(frozen=True)
class SpanView:
    kind: str  # "model" or "tool"
    label: str
    left_percent: float
    width_percent: float
    duration: str


@dataclass(frozen=True)
class TimelineView:
    spans: tuple[SpanView, ...]
    model_seconds: str
    tool_seconds: str
    total_seconds: str


def message_view(index: int, message: execution_pb2.ExecutionMessage) -> MessageView:
    kind = MESSAGE_TYPES.get(message.type, "system")
    return MessageView(
        index=index,
        kind=kind,
        label=MESSAGE_LABELS[kind],
        content=message.content,
        at=clock_text(message.timestamp),
        tool_call_ids=tuple(message.tool_call_ids),
        tool_call_id=message.tool_call_id,
    )


def _args_json(args: object) -> str:
    return json.dumps(args, indent=2, sort_keys=True, ensure_ascii=False)


def tool_call_view(call: execution_pb2.ToolCall) -> ToolCallView:
    started, completed = moment(call.started_at), moment(call.completed_at)
    duration = (completed - started).total_seconds() if started and completed else None
    decision = ""
    if call.HasField("approval") and call.approval.action:
        action = execution_pb2.ApprovalAction.Name(call.approval.action)
        decision = action.removeprefix("APPROVAL_ACTION_").lower().replace("_", " ")
        if call.approval.decided_by:
            decision += f" by {call.approval.decided_by}"
    return ToolCallView(
        id=call.id,
        name=call.name,
        server=call.server,
        args_json=_args_json(MessageToDict(call.args)),
        result=call.result,
        error=call.error,
        status=tool_status_name(call.status),
        duration=seconds_text(duration),
        requires_approval=call.requires_approval,
        decision=decision,
    )


def pending_approval_views(
    execution: execution_pb2.AgentExecution,
) -> list[PendingApprovalView]:
    return [
        PendingApprovalView(
            tool_call_id=pending.tool_call_id,
            tool=pending.tool,
            server=pending.server,
            args_json=_args_json(MessageToDict(pending.args)),
            model_text=pending.model_text,
            requested_at=clock_text(pending.requested_at),
            sub_agent=pending.sub_agent,
        )
        for pending in execution.status.pending_approvals
    ]


def tool_call_owners(execution: execution_pb2.AgentExecution) -> dict[str, int | None]:
    """For each tool call, the index of the AI message whose turn asked for it.

    The AI message names its calls when it says so (tool_call_ids); else the
    call belongs to the last AI message before its result (the TOOL message),
    and a call with no result yet to the latest AI message: the model's turn
    that asked for it is the one running.
    """
    messages = execution.status.messages
    named: dict[str, int] = {}
    by_result: dict[str, int | None] = {}
    last_ai: int | None = None
    for index, message in enumerate(messages):
        if message.type == execution_pb2.MESSAGE_TYPE_AI:
            last_ai = index
            named.update(dict.fromkeys(message.tool_call_ids, index))
        elif message.type == execution_pb2.MESSAGE_TYPE_TOOL and message.tool_call_id:
            by_result.setdefault(message.tool_call_id, last_ai)
    return {
        call.id: named.get(call.id, by_result.get(call.id, last_ai))
        for call in execution.status.tool_calls
    }


def _first_start(calls: list[execution_pb2.ToolCall]) -> datetime | None:
    starts = [s for s in (moment(c.started_at) for c in calls) if s is not None]
    return min(starts) if starts else None


def timeline_view(execution: execution_pb2.AgentExecution, now: datetime) -> TimelineView:
    status = execution.status
    owners = tool_call_owners(execution)
    end_of_run = moment(status.completed_at) or now
    raw: list[tuple[str, str, datetime, datetime]] = []
    messages = list(status.messages)
    for index, message in enumerate(messages):
        if message.type != execution_pb2.MESSAGE_TYPE_AI or index == 0:
            continue
        start = moment(messages[index - 1].timestamp)
        following = moment(messages[index + 1].timestamp) if index + 1 < len(messages) else None
        own_calls = [c for c in status.tool_calls if owners.get(c.id) == index]
        end = _first_start(own_calls) or following or end_of_run
        if start is not None:
            raw.append(("model", f"model call {len(raw) + 1}", start, max(start, end)))
    for call in status.tool_calls:
        start = moment(call.started_at)
        if start is not None:
            end = moment(call.completed_at) or end_of_run
            raw.append(("tool", f"tool {call.name}", start, max(start, end)))
    origin = moment(status.started_at) or (min(r[2] for r in raw) if raw else None)
    if origin is None:
        return TimelineView((), "", "", "")
    total = max((end_of_run - origin).total_seconds(), 1e-6)
    spans = tuple(
        SpanView(
            kind=kind,
            label=label,
            left_percent=round(100 * max((start - origin).total_seconds(), 0) / total, 2),
            width_percent=round(max(100 * (end - start).total_seconds() / total, 0.5), 2),
            duration=seconds_text((end - start).total_seconds()),
        )
        for kind, label, start, end in sorted(raw, key=lambda r: r[2])
    )
    model = sum((e - s).total_seconds() for k, _, s, e in raw if k == "model")
    tools = sum((e - s).total_seconds() for k, _, s, e in raw if k == "tool")
    return TimelineView(spans, seconds_text(model), seconds_text(tools), seconds_text(total))


@dataclass(frozen=True)
class ExecutionView:
    """The page's header facts and which buttons apply in the current phase."""

    id: str
    phase: str
    agent_id: str
    session_id: str
    model_name: str
    error: str
    started_at: str
    completed_at: str
    duration: str
    input_tokens: int
    output_tokens: int
    last_sequence: int
    is_terminal: bool
    is_cancel_requested: bool
    can_cancel: bool
    can_pause: bool
    can_resume: bool
    can_terminate: bool
    can_recover: bool
    final_answer: str


def execution_view(execution: execution_pb2.AgentExecution, now: datetime) -> ExecutionView:
    status = execution.status
    phase = status.phase
    started, completed = moment(status.started_at), moment(status.completed_at)
    duration = ((completed or now) - started).total_seconds() if started else None
    answers = [m.content for m in status.messages if m.type == execution_pb2.MESSAGE_TYPE_AI]
    is_terminal = phase in TERMINAL_PHASES
    return ExecutionView(
        id=execution.metadata.id,
        phase=phase_name(phase) if phase else "PENDING",
        agent_id=status.agent_id or execution.spec.agent_id,
        session_id=status.session_id or execution.spec.session_id,
        model_name=status.model_name,
        error=status.error,
        started_at=clock_text(status.started_at),
        completed_at=clock_text(status.completed_at),
        duration=seconds_text(duration),
        input_tokens=status.usage.input_tokens,
        output_tokens=status.usage.output_tokens,
        last_sequence=status.last_sequence,
        is_terminal=is_terminal,
        is_cancel_requested=status.is_cancel_requested,
        can_cancel=not is_terminal,
        can_pause=phase in ACTIVE_PHASES,
        can_resume=phase == PAUSED,
        can_terminate=not is_terminal,
        can_recover=phase == FAILED,
        final_answer=answers[-1] if answers and is_terminal else "",
    )


def is_waiting_for_approval(execution: execution_pb2.AgentExecution) -> bool:
    return execution.status.phase == WAITING_FOR_APPROVAL or bool(
        execution.status.pending_approvals
    )
