"""The cut rules of summarization, over random conversations with tool calls:
a cut never separates an AI message that asked for tools from their results,
always keeps the latest human message, keeps as much of the recent
conversation as the budget allows, and the fitted conversation is one every
provider accepts. The system prompt is sent apart from the messages, so no
cut can reach it; fit_context's tests show it in every request."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stigmer.runtime.context_cut import apply_cut, choose_cut, cut_points, latest_human_index
from stigmer.runtime.conversation import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolResultMessage,
    UserMessage,
)
from stigmer.runtime.summarize import summary_message

SUMMARY = summary_message("what happened before")


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    """Turns of a human message, tool rounds (an AI message asking for 1-3
    tools, then their results) and sometimes a final answer; the last turn
    may still be in its tool rounds."""
    messages: list[Message] = []
    calls = 0
    for _ in range(draw(st.integers(1, 6))):
        messages.append(UserMessage("u" * draw(st.integers(0, 400))))
        for _ in range(draw(st.integers(0, 4))):
            ids = [f"call_{calls + n}" for n in range(draw(st.integers(1, 3)))]
            calls += len(ids)
            asked = tuple(ToolCall(i, "tool", {"n": 1}) for i in ids)
            messages.append(AssistantMessage("a" * draw(st.integers(0, 50)), asked))
            messages.extend(ToolResultMessage(i, "r" * draw(st.integers(0, 800))) for i in ids)
        if draw(st.booleans()):
            messages.append(AssistantMessage("answer " * draw(st.integers(0, 20))))
    return messages


def _costs(messages: Sequence[Message]) -> list[int]:
    sizes = []
    for message in messages:
        match message:
            case UserMessage(content=text) | ToolResultMessage(content=text):
                sizes.append(len(text) // 4 + 4)
            case AssistantMessage(content=text, tool_calls=calls):
                sizes.append(len(text) // 4 + 10 * len(calls) + 4)
    return sizes


def _assert_no_pair_split(conversation: Sequence[Message]) -> None:
    """Each AI tool request is followed by exactly its results; no result stands alone."""
    index = 0
    while index < len(conversation):
        message = conversation[index]
        assert not isinstance(message, ToolResultMessage), f"orphan result at {index}"
        index += 1
        if isinstance(message, AssistantMessage) and message.tool_calls:
            results = conversation[index : index + len(message.tool_calls)]
            assert all(isinstance(r, ToolResultMessage) for r in results)
            assert [r.call_id for r in results if isinstance(r, ToolResultMessage)] == [
                c.id for c in message.tool_calls
            ]
            index += len(message.tool_calls)


@settings(max_examples=300, deadline=None)
@given(conversations(), st.integers(0, 3000))
def test_a_cut_never_splits_a_tool_pair_and_keeps_the_latest_human_message(
    messages: list[Message], budget: int
) -> None:
    costs = _costs(messages)
    human = messages[latest_human_index(messages)]

    cut = choose_cut(costs, messages, budget)

    if cut is None:
        # Nothing but the latest human message could be summarized.
        assert all(index == latest_human_index(messages) for index in cut_points(messages)[:-1])
        return
    assert cut in cut_points(messages)
    fitted, replaced = apply_cut(messages, cut, SUMMARY)
    _assert_no_pair_split(fitted)
    _assert_no_pair_split([m for m in replaced if m is not human])
    assert fitted[0] == SUMMARY
    assert sum(1 for m in fitted if m is human) == 1
    assert replaced, "a cut summarizes something"
    assert all(m is not human for m in replaced)
    # Nothing lost and nothing twice: every message is kept or summarized.
    assert len(fitted) - 1 + len(replaced) == len(messages)
    # The kept part is the conversation's end, in order.
    assert fitted[len(fitted) - (len(messages) - cut) :] == messages[cut:]


@settings(max_examples=300, deadline=None)
@given(conversations(), st.integers(0, 3000))
def test_the_cut_keeps_as_much_recent_conversation_as_the_budget_allows(
    messages: list[Message], budget: int
) -> None:
    costs = _costs(messages)
    human = latest_human_index(messages)

    cut = choose_cut(costs, messages, budget)

    if cut is None:
        return

    def kept(point: int) -> int:
        return sum(costs[point:]) + (costs[human] if human < point else 0)

    earlier = [p for p in cut_points(messages) if 0 < p < cut and any(i != human for i in range(p))]
    if kept(cut) <= budget:
        # No earlier cut (which would keep more) is within the budget.
        assert all(kept(point) > budget for point in earlier)
    else:
        # Over budget only when even the last cut is: everything older is summarized.
        assert cut == len(messages)


def test_results_of_one_request_stay_with_it_and_the_cut_lands_after_them() -> None:
    calls = (ToolCall("c1", "tool", {}), ToolCall("c2", "tool", {}))
    messages: list[Message] = [
        UserMessage("first question"),
        AssistantMessage("", calls),
        ToolResultMessage("c1", "r" * 4000),
        ToolResultMessage("c2", "r" * 4000),
        AssistantMessage("first answer"),
        UserMessage("second question"),
    ]

    assert cut_points(messages) == [0, 1, 4, 5, 6]
    # The budget holds the answer and the question, not the big results.
    cut = choose_cut(_costs(messages), messages, 50)

    assert cut == 4
    fitted, replaced = apply_cut(messages, cut, SUMMARY)
    assert fitted == [SUMMARY, AssistantMessage("first answer"), UserMessage("second question")]
    assert replaced == messages[:4]


def test_within_one_turn_the_human_message_stays_right_after_the_summary() -> None:
    messages: list[Message] = [UserMessage("do three things")]
    for n in range(3):
        messages.append(AssistantMessage("", (ToolCall(f"c{n}", "tool", {}),)))
        messages.append(ToolResultMessage(f"c{n}", "r" * 2000))

    cut = choose_cut(_costs(messages), messages, 600)

    assert cut == 5
    fitted, replaced = apply_cut(messages, cut, SUMMARY)
    assert fitted == [SUMMARY, messages[0], *messages[5:]]
    assert replaced == messages[1:5]


@pytest.mark.parametrize(
    "messages",
    [
        [UserMessage("only the question")],
        [],
    ],
)
def test_a_conversation_of_only_the_latest_human_message_has_no_cut(
    messages: list[Message],
) -> None:
    assert choose_cut(_costs(messages), messages, 0) is None
