"""Where a conversation may be cut when its older part is summarized.

Messages come in units that are never separated: an AI message that asked
for tools together with the results of those tools (a provider rejects a
tool call without its result, and a result without its call), and every
other message on its own. A cut is the start of a unit: everything before it
is summarized, everything from it on is kept as it was. Two things are never
summarized away: the system prompt (not a message here: it is sent apart)
and the latest human message, which stays, verbatim, right after the summary
when the cut passes it. So the conversation after a cut is

    [summary] + [latest human message, if before the cut] + messages[cut:]

The cut chosen is the earliest that brings the conversation down to the
target: as much of the recent conversation as fits is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from stigmer.runtime.conversation import AssistantMessage, Message, ToolResultMessage, UserMessage

__all__ = ["apply_cut", "choose_cut", "cut_points", "latest_human_index"]


def cut_points(messages: Sequence[Message]) -> list[int]:
    """The indices where a unit starts, and len(messages) (a cut after everything)."""
    points: list[int] = []
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        if isinstance(message, ToolResultMessage) and (message.call_id in open_calls or points):
            # A result belongs to the AI message before it; a result whose call is
            # not in the open unit still stays with that unit, never starts one.
            open_calls.discard(message.call_id)
            continue
        points.append(index)
        open_calls = (
            {call.id for call in message.tool_calls}
            if isinstance(message, AssistantMessage)
            else set()
        )
    points.append(len(messages))
    return points


def latest_human_index(messages: Sequence[Message]) -> int:
    """The index of the latest human message, or -1 when there is none."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], UserMessage):
            return index
    return -1


def _kept_tokens(costs: Sequence[int], cut: int, human: int) -> int:
    kept = sum(costs[cut:])
    if 0 <= human < cut:
        kept += costs[human]
    return kept


def choose_cut(costs: Sequence[int], messages: Sequence[Message], budget: int) -> int | None:
    """The earliest cut that keeps at most `budget` tokens of messages, and
    summarizes at least one message other than the latest human one.

    When no cut is that small, the one that keeps least (everything but the
    latest human message is summarized). None when nothing can be summarized.
    """
    human = latest_human_index(messages)
    candidates = [
        point for point in cut_points(messages) if any(index != human for index in range(point))
    ]
    if not candidates:
        return None
    for point in candidates:
        if _kept_tokens(costs, point, human) <= budget:
            return point
    return candidates[-1]


def apply_cut(
    messages: Sequence[Message], cut: int, summary: Message
) -> tuple[list[Message], list[Message]]:
    """(the conversation after the cut, the messages the summary replaces)."""
    human = latest_human_index(messages)
    replaced = [m for index, m in enumerate(messages[:cut]) if index != human]
    kept: list[Message] = [summary]
    if 0 <= human < cut:
        kept.append(messages[human])
    kept.extend(messages[cut:])
    return kept, replaced
