"""The model call that writes a summary of older turns.

The turns to summarize are given to the model as a transcript in one user
message, under an instruction that asks for the facts a continuation needs
(what the user wants, what was decided, what the tools returned). A
transcript longer than the summary call may send is summarized in parts that
each fit, every part folding the summary so far into the next, so the
summary call can never overflow the window either; a single message too long
for a part is shortened in the transcript (it is being summarized anyway).
No tools are offered: the summary is text. Each call's tokens are returned,
so that the execution's usage counts them like its other model calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stigmer.runtime.contract import ChatProvider, ModelError, ModelErrorKind
from stigmer.runtime.conversation import (
    AssistantMessage,
    Message,
    ToolResultMessage,
    UserMessage,
)
from stigmer.runtime.token_count import CHARS_PER_TOKEN, estimate_text, message_text

__all__ = [
    "SUMMARY_INSTRUCTIONS",
    "SUMMARY_PREFIX",
    "Summary",
    "summarize_messages",
    "summary_message",
]

SUMMARY_INSTRUCTIONS = (
    "You summarize the earlier part of a conversation between a user and an AI agent "
    "that uses tools, so that the agent can continue without it. Keep what the user "
    "asked for, decisions made, facts and figures found, what each tool returned that "
    "still matters, and what is left to do. Write plain prose, at most {words} words. "
    "Answer with the summary only."
)
SUMMARY_PREFIX = "Summary of the earlier conversation (it replaces older turns):\n"
_SHORTENED = "\n[... shortened for the summary ...]"


def summary_message(text: str) -> UserMessage:
    """The summary as it stands in the conversation, in place of the turns it replaces."""
    return UserMessage(SUMMARY_PREFIX + text)


def _transcript_line(message: Message, max_chars: int) -> str:
    match message:
        case UserMessage():
            role = "User"
        case AssistantMessage(tool_calls=calls) if calls:
            role = "Agent (calls " + ", ".join(call.name for call in calls) + ")"
        case AssistantMessage():
            role = "Agent"
        case ToolResultMessage(is_error=is_error):
            role = "Tool error" if is_error else "Tool result"
    text = message_text(message)
    if len(text) > max_chars:
        text = text[: max(0, max_chars - len(_SHORTENED))] + _SHORTENED
    return f"{role}: {text}"


def _parts(messages: Sequence[Message], part_chars: int) -> list[str]:
    parts: list[str] = []
    lines: list[str] = []
    size = 0
    for message in messages:
        line = _transcript_line(message, part_chars)
        if lines and size + len(line) + 1 > part_chars:
            parts.append("\n".join(lines))
            lines, size = [], 0
        lines.append(line)
        size += len(line) + 1
    if lines:
        parts.append("\n".join(lines))
    return parts


@dataclass(frozen=True)
class Summary:
    text: str
    calls: tuple[tuple[int | None, int | None], ...]  # each call's (input, output) tokens


async def summarize_messages(
    provider: ChatProvider,
    messages: Sequence[Message],
    *,
    input_tokens: int,
    summary_tokens: int,
) -> Summary:
    """A summary of `messages`, of about `summary_tokens` tokens at most, by
    calls that each send at most `input_tokens` tokens.

    Raises:
        ModelError: the model could not answer, or answered with nothing.
    """
    words = max(20, summary_tokens * 3 // 4)
    instructions = SUMMARY_INSTRUCTIONS.format(words=words)
    # Room for the instructions, the summary so far (folded into each next part) and framing.
    fixed = estimate_text(instructions) + summary_tokens + 32
    part_chars = max(200, (input_tokens - fixed) * CHARS_PER_TOKEN)
    summary = ""
    calls: list[tuple[int | None, int | None]] = []

    async def ignore(_: str) -> None:
        return None

    for part in _parts(messages, part_chars):
        text = part if not summary else f"Summary so far:\n{summary}\n\nContinued:\n{part}"
        turn = await provider.stream_turn(
            system=instructions,
            messages=[UserMessage(f"Conversation to summarize:\n{text}")],
            tools=[],
            on_delta=ignore,
        )
        calls.append((turn.input_tokens, turn.output_tokens))
        summary = turn.content.strip()
        if not summary:
            raise ModelError(
                "the model answered the summary request with no text",
                kind=ModelErrorKind.MALFORMED,
            )
        limit = summary_tokens * CHARS_PER_TOKEN
        if len(summary) > limit:
            summary = summary[: max(0, limit - len(_SHORTENED))] + _SHORTENED
    return Summary(summary, tuple(calls))
