"""The conversation an execution's model calls start from, rebuilt from
recorded executions: their messages in order, with each recorded summary
(status.context) applied where it was made.

A summary made when its execution had M messages replaced, at that point,
the conversation built so far by [the summary] + [the latest human message,
when the cut passed it] + the last `kept_messages` messages
(runtime/context_cut.py makes the same cut on the live conversation). So a
later model call of the execution (the Temporal engine rebuilds the
conversation for each) and every later execution of the session start from
what the model last saw, not from the turns the summary replaced.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from google.protobuf import json_format

from stigmer.api.v1 import execution_pb2
from stigmer.runtime.contract import HistoryMessage, HistoryToolCall
from stigmer.runtime.summarize import SUMMARY_PREFIX

__all__ = ["conversation_history", "tool_result_of"]


def conversation_history(
    executions: Iterable[execution_pb2.AgentExecution],
    *,
    included_in_last: Collection[int] | None = None,
) -> tuple[HistoryMessage, ...]:
    """The exchanges of `executions` (oldest first) as the model saw them.

    An AI message's tool calls are the TOOL messages that follow it. With
    `included_in_last`, only those message indices of the last execution
    count (the others are partial answers of a lost worker).
    """
    history: list[HistoryMessage] = []
    listed = list(executions)
    for position, execution in enumerate(listed):
        calls = {call.id: call for call in execution.status.tool_calls}
        messages = list(execution.status.messages)
        summaries = sorted(execution.status.context, key=lambda s: s.message_index)
        is_last = position == len(listed) - 1
        pending = 0
        for index in range(len(messages)):
            while pending < len(summaries) and summaries[pending].message_index <= index:
                history = _summarized(history, summaries[pending])
                pending += 1
            if is_last and included_in_last is not None and index not in included_in_last:
                continue
            entry = _history_message(messages, index, calls)
            if entry is not None:
                history.append(entry)
        for summary in summaries[pending:]:
            history = _summarized(history, summary)
    return tuple(history)


def _summarized(
    history: list[HistoryMessage], summary: execution_pb2.ContextSummary
) -> list[HistoryMessage]:
    cut = max(0, len(history) - summary.kept_messages)
    human = next((i for i in range(len(history) - 1, -1, -1) if history[i].role == "user"), -1)
    rebuilt = [HistoryMessage("user", SUMMARY_PREFIX + summary.summary)]
    if 0 <= human < cut:
        rebuilt.append(history[human])
    return rebuilt + history[cut:]


def _history_message(
    messages: list[execution_pb2.ExecutionMessage],
    index: int,
    calls: Mapping[str, execution_pb2.ToolCall],
) -> HistoryMessage | None:
    message = messages[index]
    if message.type == execution_pb2.MESSAGE_TYPE_HUMAN:
        return HistoryMessage("user", message.content)
    if message.type == execution_pb2.MESSAGE_TYPE_AI:
        asked = []
        for following in messages[index + 1 :]:
            if following.type != execution_pb2.MESSAGE_TYPE_TOOL:
                break
            call = calls.get(following.tool_call_id)
            if call is not None:
                arguments = json_format.MessageToDict(call.args)
                asked.append(HistoryToolCall(call.id, call.name, arguments))
        return HistoryMessage("assistant", message.content, tuple(asked))
    if message.type == execution_pb2.MESSAGE_TYPE_TOOL:
        return HistoryMessage(
            "tool", tool_result_of(message, calls), tool_call_id=message.tool_call_id
        )
    return None


def tool_result_of(
    message: execution_pb2.ExecutionMessage, calls: Mapping[str, execution_pb2.ToolCall]
) -> str:
    """A TOOL message's text: kept once, in its tool call (result or error);
    executions recorded before that kept it in the message itself."""
    if message.content:
        return message.content
    call = calls.get(message.tool_call_id)
    if call is None:
        return ""
    return call.result or call.error
