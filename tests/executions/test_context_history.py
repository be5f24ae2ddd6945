"""A session's conversation rebuilt from its recorded executions starts from
their summaries: each replaces, where it was made, the turns before its kept
messages, and keeps the latest human message when the cut passed it."""

from __future__ import annotations

from google.protobuf import struct_pb2

from stigmer.api.v1 import execution_pb2
from stigmer.engine.context_history import conversation_history
from stigmer.runtime.contract import HistoryMessage, HistoryToolCall
from stigmer.runtime.summarize import SUMMARY_PREFIX

HUMAN = execution_pb2.MESSAGE_TYPE_HUMAN
AI = execution_pb2.MESSAGE_TYPE_AI
TOOL = execution_pb2.MESSAGE_TYPE_TOOL
SYSTEM = execution_pb2.MESSAGE_TYPE_SYSTEM


def _execution(
    question: str,
    call_id: str,
    *,
    summaries: tuple[execution_pb2.ContextSummary, ...] = (),
    extra: tuple[execution_pb2.ExecutionMessage, ...] = (),
) -> execution_pb2.AgentExecution:
    """A human question, a tool round, then the answer."""
    execution = execution_pb2.AgentExecution()
    status = execution.status
    status.messages.extend(
        [
            execution_pb2.ExecutionMessage(type=HUMAN, content=question),
            execution_pb2.ExecutionMessage(type=AI, content=""),
            execution_pb2.ExecutionMessage(type=TOOL, tool_call_id=call_id),
            *extra,
            execution_pb2.ExecutionMessage(type=AI, content=f"answer to {question}"),
        ]
    )
    status.tool_calls.append(
        execution_pb2.ToolCall(id=call_id, name="look", args=struct_pb2.Struct(), result="found")
    )
    status.context.extend(summaries)
    return execution


def _round(question: str, call_id: str) -> list[HistoryMessage]:
    return [
        HistoryMessage("user", question),
        HistoryMessage("assistant", "", (HistoryToolCall(call_id, "look", {}),)),
        HistoryMessage("tool", "found", tool_call_id=call_id),
    ]


def test_without_summaries_the_history_is_every_exchange() -> None:
    history = conversation_history([_execution("q1", "c1"), _execution("q2", "c2")])

    assert list(history) == [
        *_round("q1", "c1"),
        HistoryMessage("assistant", "answer to q1"),
        *_round("q2", "c2"),
        HistoryMessage("assistant", "answer to q2"),
    ]


def test_a_summary_made_mid_turn_keeps_its_human_message_and_the_kept_tail() -> None:
    # Made in the second execution before its answer (3 messages recorded),
    # keeping its tool round (2 messages); the cut passed its human message.
    summary = execution_pb2.ContextSummary(
        summary="q1 was answered", message_index=3, kept_messages=2
    )
    executions = [_execution("q1", "c1"), _execution("q2", "c2", summaries=(summary,))]

    history = conversation_history(executions)

    assert list(history) == [
        HistoryMessage("user", SUMMARY_PREFIX + "q1 was answered"),
        *_round("q2", "c2"),
        HistoryMessage("assistant", "answer to q2"),
    ]
    # A later execution of the session starts from the same place.
    later = conversation_history([*executions, _execution("q3", "c3")])
    assert list(later[:5]) == list(history)


def test_the_latest_summary_folds_the_earlier_ones_and_system_notes_do_not_count() -> None:
    first = execution_pb2.ContextSummary(summary="one", message_index=3, kept_messages=2)
    second = execution_pb2.ContextSummary(summary="two", message_index=4, kept_messages=0)
    note = execution_pb2.ExecutionMessage(type=SYSTEM, content="a note for people")
    executions = [_execution("q1", "c1", summaries=(first, second), extra=(note,))]

    history = conversation_history(executions)

    # The second summary (after the SYSTEM note) kept nothing but the human message.
    assert list(history) == [
        HistoryMessage("user", SUMMARY_PREFIX + "two"),
        HistoryMessage("user", "q1"),
        HistoryMessage("assistant", "answer to q1"),
    ]


def test_messages_left_out_of_the_last_execution_are_skipped() -> None:
    history = conversation_history([_execution("q1", "c1")], included_in_last={0, 1, 2})

    assert list(history) == _round("q1", "c1")
