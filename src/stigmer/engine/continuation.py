"""Continuing an execution from its recorded conversation.

An execution stops between steps when a person must decide on tool calls
(and, through Pause or a failure, at other points between steps). Whichever
engine picks it up again rebuilds what the model had seen from the
execution's status alone, so nothing of a run needs to survive in memory:
the user's message, each AI message with the calls it asked for
(`tool_call_ids`), and each tool result. The calls of its last turn that
have no result yet are the open calls, settled before the model is asked
again:

- approved or edited (the person's `edited_args`), or never started: run;
- skipped or rejected: not run, the decision's text is their result;
- completed or failed without their place in the conversation: that result;
- running when the execution stopped: never run twice (a tool may have
  side effects), the model reads that the call was interrupted.

AI messages that produced nothing (a model call lost with its worker) are
left out, as the Temporal workflow leaves them out of `included`.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format

from stigmer.api.v1 import execution_pb2
from stigmer.engine.run_requests import tool_result_of
from stigmer.runtime.contract import (
    Continuation,
    HistoryMessage,
    HistoryToolCall,
    OpenToolCall,
    ToolCallRequest,
)

INTERRUPTED_RESULT = (
    "the tool call was interrupted when the execution stopped; it is not run again "
    "because it may have had side effects"
)
UNDECIDED_RESULT = "the tool call was never decided on, so it was not run"
_TO_RUN = frozenset(
    {
        execution_pb2.APPROVAL_ACTION_APPROVE,
        execution_pb2.APPROVAL_ACTION_APPROVE_ALL,
        execution_pb2.APPROVAL_ACTION_EDIT,
    }
)


@dataclass(frozen=True)
class RecordedConversation:
    """The continuation, and which recorded messages make its conversation
    (indexes into status.messages, for the Temporal workflow's `included`)."""

    continuation: Continuation
    included: tuple[int, ...]


def has_run(execution: execution_pb2.AgentExecution) -> bool:
    """Whether the model has been asked anything for this execution yet."""
    return any(m.type == execution_pb2.MESSAGE_TYPE_AI for m in execution.status.messages)


def recorded_conversation(execution: execution_pb2.AgentExecution) -> RecordedConversation:
    status = execution.status
    messages = list(status.messages)
    calls = {call.id: call for call in status.tool_calls}
    answered = {m.tool_call_id for m in messages if m.type == execution_pb2.MESSAGE_TYPE_TOOL}
    conversation: list[HistoryMessage] = []
    included: list[int] = []
    last_asked: list[str] = []
    for index, message in enumerate(messages):
        if message.type == execution_pb2.MESSAGE_TYPE_HUMAN:
            conversation.append(HistoryMessage("user", message.content))
        elif message.type == execution_pb2.MESSAGE_TYPE_AI:
            asked = [i for i in _asked_by(messages, index) if i in calls]
            if not message.content and not asked:
                continue
            conversation.append(
                HistoryMessage(
                    "assistant",
                    message.content,
                    tuple(
                        HistoryToolCall(i, calls[i].name, json_format.MessageToDict(calls[i].args))
                        for i in asked
                    ),
                )
            )
            last_asked = asked
        elif message.type == execution_pb2.MESSAGE_TYPE_TOOL:
            conversation.append(
                HistoryMessage(
                    "tool", tool_result_of(message, calls), tool_call_id=message.tool_call_id
                )
            )
        else:
            continue
        included.append(index)
    open_calls = tuple(open_call_of(calls[i]) for i in last_asked if i not in answered)
    return RecordedConversation(Continuation(tuple(conversation), open_calls), tuple(included))


def _asked_by(messages: list[execution_pb2.ExecutionMessage], index: int) -> list[str]:
    """The calls an AI message asked for; executions recorded before AI
    messages named their calls: the TOOL messages that follow it."""
    if messages[index].tool_call_ids:
        return list(messages[index].tool_call_ids)
    asked = []
    for following in messages[index + 1 :]:
        if following.type != execution_pb2.MESSAGE_TYPE_TOOL:
            break
        asked.append(following.tool_call_id)
    return asked


def open_call_of(call: execution_pb2.ToolCall) -> OpenToolCall:
    arguments = json_format.MessageToDict(call.args)
    if call.approval.action == execution_pb2.APPROVAL_ACTION_EDIT and call.approval.HasField(
        "edited_args"
    ):
        arguments = json_format.MessageToDict(call.approval.edited_args)
    request = ToolCallRequest(call.id, call.name, call.server, arguments)
    status = call.status
    if status in (execution_pb2.TOOL_CALL_STATUS_SKIPPED, execution_pb2.TOOL_CALL_STATUS_REJECTED):
        return OpenToolCall(request, result=call.result, is_recorded=True)
    if status == execution_pb2.TOOL_CALL_STATUS_COMPLETED:
        return OpenToolCall(request, result=call.result, is_recorded=True)
    if status == execution_pb2.TOOL_CALL_STATUS_FAILED:
        return OpenToolCall(request, result=call.error, is_error=True, is_recorded=True)
    if status == execution_pb2.TOOL_CALL_STATUS_PENDING and (
        not call.requires_approval or call.approval.action in _TO_RUN
    ):
        return OpenToolCall(request)
    if status == execution_pb2.TOOL_CALL_STATUS_WAITING_APPROVAL:
        return OpenToolCall(request, result=UNDECIDED_RESULT, is_error=True)
    return OpenToolCall(request, result=INTERRUPTED_RESULT, is_error=True)
