"""The conversation as the agent loop keeps it, in no provider's shape.

The loop appends user text, the model's turns and tool results here; each
provider converts the whole list to its own wire shape on every call
(`openai_chat.py`, `anthropic_chat.py`). Keeping one neutral form means the
loop, the session history and the tests never care which SDK answers. Tool-call
arguments are parsed here too, once for every provider: a model that writes
malformed JSON gets a `ModelError`, not a tool called with garbage.

History comes from recorded executions, which may end mid-turn: an execution
cancelled during a tool call leaves an assistant message whose tool call has no
result. Both OpenAI and Anthropic reject such a conversation outright, so
`messages_from_history` repairs it (a missing result becomes an error result,
a result without its call is dropped) instead of failing every later run of the
session.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stigmer.runtime.contract import HistoryMessage, ModelError, ModelErrorKind

logger = logging.getLogger(__name__)

MISSING_RESULT = "the tool call was interrupted: no result was recorded"


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for, with its arguments parsed from JSON."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class UserMessage:
    content: str


@dataclass(frozen=True)
class AssistantMessage:
    content: str
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolResultMessage:
    call_id: str
    content: str
    is_error: bool = False


Message = UserMessage | AssistantMessage | ToolResultMessage


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model is offered it: a unique name, what it does, its JSON schema."""

    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True)
class ModelTurn:
    """One complete model reply; token counts are None when not reported.

    `input_tokens` include `cached_tokens` (read from the provider's prompt
    cache); `output_tokens` include `reasoning_tokens`.
    """

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


def messages_from_history(history: Iterable[HistoryMessage]) -> list[Message]:
    """Converts recorded session messages to a conversation every provider accepts.

    Each assistant tool call is followed by exactly one result, in call order:
    missing results become error results, results for calls that were never
    asked for (or asked twice) are dropped.
    """
    messages: list[Message] = []
    pending: dict[str, None] = {}  # insertion-ordered ids still waiting for their result

    def close_pending() -> None:
        messages.extend(
            ToolResultMessage(call_id, MISSING_RESULT, is_error=True) for call_id in pending
        )
        pending.clear()

    for entry in history:
        if entry.role == "tool":
            if entry.tool_call_id in pending:
                del pending[entry.tool_call_id]
                messages.append(ToolResultMessage(entry.tool_call_id, entry.content))
            else:
                logger.warning("dropping a tool result without its call: %r", entry.tool_call_id)
            continue
        close_pending()
        if entry.role == "user":
            messages.append(UserMessage(entry.content))
        else:
            calls = tuple(ToolCall(call.id, call.name, call.arguments) for call in entry.tool_calls)
            messages.append(AssistantMessage(entry.content, calls))
            pending.update(dict.fromkeys(call.id for call in calls))
    close_pending()
    return messages


def tool_arguments_from_json(tool_name: str, text: str) -> dict[str, Any]:
    """A tool call's arguments as the model wrote them; empty text means no arguments.

    Raises:
        ModelError: the text is not a JSON object.
    """
    try:
        arguments = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ModelError(
            f"model sent malformed JSON arguments for tool {tool_name!r}: {exc}: {text[:200]!r}",
            kind=ModelErrorKind.MALFORMED,
        ) from exc
    if not isinstance(arguments, dict):
        raise ModelError(
            f"model sent arguments for tool {tool_name!r} that are not a JSON object: "
            f"{text[:200]!r}",
            kind=ModelErrorKind.MALFORMED,
        )
    return arguments


def new_call_id() -> str:
    # Some local servers stream tool calls without ids; results must still be matched to calls.
    return f"call_{uuid.uuid4().hex[:24]}"
