"""What a worker may report through RecordEvents, checked event by event
before any is applied.

A worker reports changes of the one execution it runs: messages, text
deltas, tool calls, usage, and the phase it ends in. It never sends a
snapshot (a snapshot replaces the whole execution, spec included; only the
server writes those), never puts an execution back to PENDING (requeueing is
the server's decision) and never leaves a phase, a message type or a tool
call status outside its enum: an execution in an unknown phase would never
be claimed, reaped or reported by `stigmer check`.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from stigmer.api.v1 import execution_pb2
from stigmer.errors import InvalidArgument, PermissionDenied
from stigmer.resources.execution_events import PENDING

# The range google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_REPORTABLE_PHASES = frozenset(
    value
    for value in execution_pb2.ExecutionPhase.values()
    if value not in (execution_pb2.EXECUTION_PHASE_UNSPECIFIED, PENDING)
)
# Requests of a person, recorded by the server's own pipelines only.
_SERVER_ONLY_CHANGES = frozenset({"cancel_requested", "pause_requested", "resumed", "recovered"})
_MESSAGE_TYPES = frozenset(execution_pb2.MessageType.values()) - {
    execution_pb2.MESSAGE_TYPE_UNSPECIFIED
}
_TOOL_CALL_STATES = frozenset(execution_pb2.ToolCallStatus.values()) - {
    execution_pb2.TOOL_CALL_STATUS_UNSPECIFIED
}


def check_reported_events(
    execution_id: str, events: Sequence[execution_pb2.ExecutionEvent]
) -> None:
    """Refuses the whole report when one event is not a worker's to send.

    Raises:
        PermissionDenied: an event is a snapshot of another execution.
        InvalidArgument: an event is empty, a snapshot, a phase outside the
            reportable ones, an enum value out of range, a negative index or
            count, or a timestamp out of range (the field is named).
    """
    for index, event in enumerate(events):
        _check_event(execution_id, event, f"events[{index}]")


def _check_event(execution_id: str, event: execution_pb2.ExecutionEvent, path: str) -> None:
    if event.HasField("at"):
        _check_timestamp(event.at, f"{path}.at")
    change = event.WhichOneof("change")
    if change is None:
        raise InvalidArgument.for_field(path, "the event carries no change")
    where = f"{path}.{change}"
    if change == "snapshot":
        if event.snapshot.metadata.id != execution_id:
            raise PermissionDenied(
                f"{where}: a snapshot of another execution cannot be recorded on {execution_id}",
                facts={"field": where, "execution_id": execution_id},
            )
        raise InvalidArgument.for_field(where, "snapshots are written by the server only")
    if change in _SERVER_ONLY_CHANGES:
        raise InvalidArgument.for_field(where, f"{change} is recorded by the server only")
    if change == "approval_decided":
        raise InvalidArgument.for_field(
            where, "decisions are submitted with SubmitApproval, not reported by workers"
        )
    if change == "phase_changed":
        phase = event.phase_changed.phase
        if phase not in _REPORTABLE_PHASES:
            raise InvalidArgument.for_field(
                f"{where}.phase",
                f"{phase} is not a phase a worker reports "
                "(IN_PROGRESS, COMPLETED, FAILED or CANCELLED)",
            )
    elif change == "message_added":
        message = event.message_added
        if message.type not in _MESSAGE_TYPES:
            raise InvalidArgument.for_field(
                f"{where}.type", f"{message.type} is not a message type"
            )
        _check_timestamps_in(message, where)
    elif change == "message_delta":
        if event.message_delta.index < 0:
            raise InvalidArgument.for_field(f"{where}.index", "must be 0 or more")
    elif change == "tool_call_updated":
        call = event.tool_call_updated
        if not call.id:
            raise InvalidArgument.for_field(f"{where}.id", "a tool call needs its id")
        if call.status not in _TOOL_CALL_STATES:
            raise InvalidArgument.for_field(
                f"{where}.status", f"{call.status} is not a tool call status"
            )
        _check_timestamps_in(call, where)
    elif change == "usage_added":
        usage = event.usage_added
        if usage.input_tokens < 0 or usage.output_tokens < 0:
            raise InvalidArgument.for_field(where, "token counts must be 0 or more")


def _check_timestamps_in(message: Message, path: str) -> None:
    for field, value in message.ListFields():
        if isinstance(value, timestamp_pb2.Timestamp):
            _check_timestamp(value, f"{path}.{field.name}")


def _check_timestamp(moment: timestamp_pb2.Timestamp, path: str) -> None:
    if not _MIN_SECONDS <= moment.seconds <= _MAX_SECONDS or not 0 <= moment.nanos < 10**9:
        raise InvalidArgument.for_field(path, "the timestamp is out of range")
