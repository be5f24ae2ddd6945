"""Session history becomes a conversation every provider accepts."""

from __future__ import annotations

from stigmer.runtime.contract import HistoryMessage, HistoryToolCall
from stigmer.runtime.conversation import (
    MISSING_RESULT,
    AssistantMessage,
    ToolCall,
    ToolResultMessage,
    UserMessage,
    messages_from_history,
)


def asked(*ids: str) -> HistoryMessage:
    calls = tuple(HistoryToolCall(id=id_, name="add", arguments={"a": 1}) for id_ in ids)
    return HistoryMessage(role="assistant", content="", tool_calls=calls)


def test_complete_history_converts_message_for_message() -> None:
    history = (
        HistoryMessage(role="user", content="2 + 3?"),
        asked("c1"),
        HistoryMessage(role="tool", content="5", tool_call_id="c1"),
        HistoryMessage(role="assistant", content="5."),
    )
    assert messages_from_history(history) == [
        UserMessage("2 + 3?"),
        AssistantMessage("", (ToolCall("c1", "add", {"a": 1}),)),
        ToolResultMessage("c1", "5"),
        AssistantMessage("5."),
    ]


def test_a_tool_call_whose_result_was_never_recorded_gets_an_error_result() -> None:
    history = (
        HistoryMessage(role="user", content="2 + 3?"),
        asked("c1", "c2"),
        HistoryMessage(role="tool", content="5", tool_call_id="c2"),
        HistoryMessage(role="user", content="Still there?"),
    )
    assert messages_from_history(history)[2:] == [
        ToolResultMessage("c2", "5"),
        ToolResultMessage("c1", MISSING_RESULT, is_error=True),
        UserMessage("Still there?"),
    ]
    assert messages_from_history(history[:2])[-1] == ToolResultMessage(
        "c2", MISSING_RESULT, is_error=True
    )


def test_a_tool_result_without_its_call_is_dropped() -> None:
    history = (
        HistoryMessage(role="user", content="hi"),
        HistoryMessage(role="tool", content="stray", tool_call_id="nobody"),
        asked("c1"),
        HistoryMessage(role="tool", content="5", tool_call_id="c1"),
        HistoryMessage(role="tool", content="again", tool_call_id="c1"),
    )
    assert messages_from_history(history) == [
        UserMessage("hi"),
        AssistantMessage("", (ToolCall("c1", "add", {"a": 1}),)),
        ToolResultMessage("c1", "5"),
    ]
