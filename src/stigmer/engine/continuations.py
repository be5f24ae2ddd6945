"""Continuing an execution from its recorded conversation.

An execution that stopped between steps (paused, or failed and recovered)
continues on either engine from what it recorded, not from a memory of the
run: the conversation so far is its messages, and the tool calls of the
model's last turn are in one of three states.

- Answered (a TOOL message holds the result): part of the conversation, never
  run again.
- Never started (no `started_at`: a pause came before it): run before the
  next model call.
- Started and never finished (its worker was lost, or the run failed under
  it): not run again, since a tool may write a file or send a mail; it is
  recorded FAILED with that reason, and the model reads the reason as its
  result.

Messages that are not part of the conversation stay recorded but are not
sent to the model again: an AI message followed by another AI message (a
model call lost and retried on Temporal), and a last AI message with no tool
call left to run (the model call the run failed in, asked again).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from google.protobuf import json_format

from stigmer.api.v1 import execution_pb2
from stigmer.engine.recording import RecordingSink
from stigmer.engine.run_requests import history_messages
from stigmer.runtime.contract import (
    HistoryMessage,
    HistoryToolCall,
    RunRequest,
    ToolCallRequest,
)

AI = execution_pb2.MESSAGE_TYPE_AI
SYSTEM = execution_pb2.MESSAGE_TYPE_SYSTEM
TOOL = execution_pb2.MESSAGE_TYPE_TOOL
INTERRUPTED_REASON = (
    "this tool call was interrupted before it finished and is not run again, because it "
    "may have had side effects"
)


@dataclass(frozen=True)
class Continuation:
    included: tuple[int, ...]  # the messages that make up the conversation so far
    calls_to_run: tuple[execution_pb2.ToolCall, ...]  # of the last turn, never started
    calls_interrupted: tuple[execution_pb2.ToolCall, ...]  # started, never finished

    @property
    def is_empty(self) -> bool:
        """Nothing but the user's message: the run starts from the beginning."""
        return (
            not self.calls_to_run
            and not self.calls_interrupted
            and all(index == 0 for index in self.included)
        )


def continuation_of(execution: execution_pb2.AgentExecution) -> Continuation:
    status = execution.status
    messages = list(status.messages)
    answered = {m.tool_call_id for m in messages if m.type == TOOL}
    unanswered = [call for call in status.tool_calls if call.id not in answered]
    # SYSTEM messages (a failure's reason, a note) are for people, not the model.
    spoken = [index for index, message in enumerate(messages) if message.type != SYSTEM]
    included: list[int] = []
    for position, index in enumerate(spoken):
        if messages[index].type == AI:
            following = spoken[position + 1] if position + 1 < len(spoken) else None
            if following is not None and messages[following].type == AI:
                continue
            if following is None and not unanswered:
                continue
        included.append(index)
    return Continuation(
        included=tuple(included),
        calls_to_run=tuple(c for c in unanswered if not c.HasField("started_at")),
        calls_interrupted=tuple(c for c in unanswered if c.HasField("started_at")),
    )


def tool_call_request(call: execution_pb2.ToolCall) -> ToolCallRequest:
    return ToolCallRequest(
        id=call.id,
        name=call.name,
        server=call.server,
        arguments=json_format.MessageToDict(call.args),
    )


def conversation_so_far(
    execution: execution_pb2.AgentExecution, continuation: Continuation
) -> tuple[HistoryMessage, ...]:
    """The execution's own conversation as the model saw it, its last AI
    message asking for the calls still to run as well."""
    kept = execution_pb2.AgentExecution()
    kept.CopyFrom(execution)
    del kept.status.messages[:]
    kept.status.messages.extend(execution.status.messages[i] for i in continuation.included)
    conversation = list(history_messages([kept]))
    if continuation.calls_to_run:
        for position in range(len(conversation) - 1, -1, -1):
            message = conversation[position]
            if message.role == "assistant":
                asked = message.tool_calls + tuple(
                    HistoryToolCall(c.id, c.name, json_format.MessageToDict(c.args))
                    for c in continuation.calls_to_run
                )
                conversation[position] = HistoryMessage("assistant", message.content, asked)
                break
    return tuple(conversation)


def continued_request(
    request: RunRequest, execution: execution_pb2.AgentExecution, continuation: Continuation
) -> RunRequest:
    """The request of a fresh run of the execution, made to go on from
    where it stopped."""
    return dataclasses.replace(
        request,
        history=request.history + conversation_so_far(execution, continuation),
        is_continuation=True,
        resume_calls=tuple(tool_call_request(call) for call in continuation.calls_to_run),
    )


async def settle_interrupted_calls(sink: RecordingSink, continuation: Continuation) -> None:
    """Records each interrupted call FAILED with the reason, as its result."""
    for call in continuation.calls_interrupted:
        sink.reopen(tool_call_request(call))
        await sink.tool_call_finished(call.id, INTERRUPTED_REASON, is_error=True)
