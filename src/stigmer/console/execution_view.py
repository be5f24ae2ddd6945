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

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2
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


def epoch_seconds(stamp: Timestamp) -> float | None:
    """The stamp as seconds since the epoch: cheaper than a datetime where
    only differences count (the timeline, durations)."""
    return stamp.seconds + stamp.nanos / 1e9 if stamp.seconds or stamp.nanos else None


@functools.lru_cache(maxsize=4096)
def _clock_text_of(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock_text(stamp: Timestamp) -> str:
    # Messages of one run share their seconds: each is formatted once.
    return _clock_text_of(stamp.seconds) if stamp.seconds or stamp.nanos else ""


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


def _plain(value: Any) -> Any:
    """A Struct's values as JSON values; whole numbers without a fraction."""
    if isinstance(value, struct_pb2.Struct):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, struct_pb2.ListValue):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _args_json(args: struct_pb2.Struct) -> str:
    # No indent: json's C encoder only runs without one, and a page shows
    # hundreds of these.
    return json.dumps(_plain(args), sort_keys=True, ensure_ascii=False)


def tool_call_view(call: execution_pb2.ToolCall) -> ToolCallView:
    started, completed = epoch_seconds(call.started_at), epoch_seconds(call.completed_at)
    duration = completed - started if started is not None and completed is not None else None
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
        args_json=_args_json(call.args),
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
            args_json=_args_json(pending.args),
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


def _first_start(calls: list[execution_pb2.ToolCall]) -> float | None:
    starts = [s for s in (epoch_seconds(c.started_at) for c in calls) if s is not None]
    return min(starts) if starts else None


def _tool_span_label(calls: list[execution_pb2.ToolCall]) -> str:
    counts: dict[str, int] = {}
    for call in calls:
        counts[call.name] = counts.get(call.name, 0) + 1
    names = ", ".join(name if n == 1 else f"{name} x{n}" for name, n in counts.items())
    return f"tools {names}"


def timeline_view(execution: execution_pb2.AgentExecution, now: datetime) -> TimelineView:
    """One span per model call and one per turn's tool calls (from the first
    start to the last end): a run of hundreds of calls stays one short chart."""
    status = execution.status
    owners = tool_call_owners(execution)
    end_of_run = epoch_seconds(status.completed_at) or now.timestamp()
    calls_of_turn: dict[int | None, list[execution_pb2.ToolCall]] = {}
    for call in status.tool_calls:
        calls_of_turn.setdefault(owners.get(call.id), []).append(call)
    raw: list[tuple[str, str, float, float]] = []
    stamps = [epoch_seconds(m.timestamp) for m in status.messages]
    run_start = epoch_seconds(status.started_at)
    model_calls = 0
    for index, message in enumerate(status.messages):
        if message.type != execution_pb2.MESSAGE_TYPE_AI or index == 0:
            continue
        start = stamps[index - 1]
        # A queued execution's human message predates its start; a start
        # later than this message is a continuation's (after approvals).
        own = stamps[index]
        if start is not None and run_start is not None and start < run_start <= (own or run_start):
            start = run_start
        following = stamps[index + 1] if index + 1 < len(stamps) else None
        end = _first_start(calls_of_turn.get(index, [])) or following or end_of_run
        if start is not None:
            model_calls += 1
            raw.append(("model", f"model call {model_calls}", start, max(start, end)))
    for calls in calls_of_turn.values():
        first = _first_start(calls)
        if first is None:
            continue
        ends = [epoch_seconds(c.completed_at) or end_of_run for c in calls]
        raw.append(("tool", _tool_span_label(calls), first, max([first, *ends])))
    earliest = [r[2] for r in raw] + ([run_start] if run_start is not None else [])
    origin = min(earliest) if earliest else None
    if origin is None:
        return TimelineView((), "", "", "")
    total = max(end_of_run - origin, 1e-6)
    spans = tuple(
        SpanView(
            kind=kind,
            label=label,
            left_percent=round(100 * max(start - origin, 0) / total, 2),
            width_percent=round(
                min(
                    max(100 * (end - start) / total, 0.5),
                    100 - 100 * max(start - origin, 0) / total,
                ),
                2,
            ),
            duration=seconds_text(end - start),
        )
        for kind, label, start, end in sorted(raw, key=lambda r: r[2])
    )
    model = sum(e - s for k, _, s, e in raw if k == "model")
    tools = sum(e - s for k, _, s, e in raw if k == "tool")
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
