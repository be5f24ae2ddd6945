"""A person's decision on a tool call that waits for one
(`execution.submit-approval`).

The decision is recorded as an approval_decided event on the execution: the
call keeps it (who, when, the comment, edited arguments), a skipped or
rejected call ends with the text the model will read, an approved one waits
to run. APPROVE_ALL decides the other waiting calls of the same server/tool
in the same turn too, and the engine approves the later ones (see
engine/tool_policies.py). When no call of the turn is left waiting, the
execution goes back to PENDING, in the same transaction: the engine claims
it like any queued execution and continues it from its recorded
conversation (engine/continuation.py), with all the decisions at once.

The same decision twice is a no-op that returns the current state, so a
client may retry; a different decision on a decided call, or any decision
on an execution that does not wait, is FAILED_PRECONDITION.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from google.protobuf import json_format

from stigmer.api.v1 import execution_pb2
from stigmer.domain.execution.updates import UpdateContext
from stigmer.errors import FailedPrecondition, InvalidArgument
from stigmer.resources.execution_events import (
    PENDING,
    WAITING_FOR_APPROVAL,
    approval_decided_event,
    phase_event,
    phase_name,
)

LOCAL_DECIDER = "local"
TIMEOUT_DECIDER = "timeout"


@dataclass(kw_only=True)
class ApprovalContext(UpdateContext):
    request: execution_pb2.SubmitApprovalRequest
    decided_by: str


def _decided_call(
    execution: execution_pb2.AgentExecution, tool_call_id: str
) -> execution_pb2.ToolCall:
    for call in execution.status.tool_calls:
        if call.id == tool_call_id:
            return call
    raise InvalidArgument.for_field(
        "tool_call_id",
        f"execution {execution.metadata.id} has no tool call {tool_call_id!r}",
    )


def _is_same_decision(
    approval: execution_pb2.ToolApproval, request: execution_pb2.SubmitApprovalRequest
) -> bool:
    if approval.action != request.action:
        return False
    if request.action == execution_pb2.APPROVAL_ACTION_EDIT:
        return approval.edited_args == request.edited_args
    return True


def check_edited_args(call: execution_pb2.ToolCall, edited: Any) -> None:
    """Raises InvalidArgument naming the first field of `edited_args` that
    the tool's input schema refuses."""
    schema = json_format.MessageToDict(call.input_schema)
    if not schema:
        return
    validator_class = jsonschema.validators.validator_for(schema)
    errors = sorted(
        validator_class(schema).iter_errors(edited), key=lambda e: list(e.absolute_path)
    )
    if errors:
        error = errors[0]
        path = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
        )
        raise InvalidArgument.for_field(f"edited_args{path}", error.message)


@dataclass(frozen=True)
class DecideApprovalStep:
    name: str = "decide-approval"

    async def run(self, context: ApprovalContext) -> None:
        execution = context.require_execution()
        request = context.request
        call = _decided_call(execution, request.tool_call_id)
        if call.HasField("approval") and call.approval.action:
            if _is_same_decision(call.approval, request):
                context.finish()
                return
            raise FailedPrecondition(
                f"tool call {call.id} was already decided "
                f"({execution_pb2.ApprovalAction.Name(call.approval.action)} "
                f"by {call.approval.decided_by})",
                facts={"execution_id": context.execution_id, "tool_call_id": call.id},
            )
        phase = execution.status.phase
        if (
            phase != WAITING_FOR_APPROVAL
            or call.status != execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL
        ):
            raise FailedPrecondition(
                f"execution {context.execution_id} does not wait for a decision on "
                f"tool call {call.id} (it is {phase_name(phase)})",
                facts={"execution_id": context.execution_id, "tool_call_id": call.id},
            )
        approval = execution_pb2.ToolApproval(
            action=request.action, comment=request.comment, decided_by=context.decided_by
        )
        approval.decided_at.FromDatetime(datetime.now(UTC))
        if request.action == execution_pb2.APPROVAL_ACTION_EDIT:
            if not request.HasField("edited_args"):
                raise InvalidArgument.for_field(
                    "edited_args", "EDIT needs the arguments to run the call with"
                )
            check_edited_args(call, json_format.MessageToDict(request.edited_args))
            approval.edited_args.CopyFrom(request.edited_args)
        decided = [call.id]
        if request.action == execution_pb2.APPROVAL_ACTION_APPROVE_ALL:
            decided += [
                other.id
                for other in execution.status.tool_calls
                if other.id != call.id
                and other.status == execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL
                and (other.server, other.name) == (call.server, call.name)
            ]
        context.events = [approval_decided_event(i, approval) for i in decided]
        waiting = {a.tool_call_id for a in execution.status.pending_approvals} - set(decided)
        if not waiting:
            context.events.append(phase_event(PENDING))
