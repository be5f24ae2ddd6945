"""The Anthropic provider: the messages API, streamed, through `anthropic.AsyncAnthropic`.

Anthropic's shapes differ from chat completions in three ways that matter
here: the system prompt is a parameter, not a message; tool results are
`tool_result` blocks of a user turn; and a reply is a list of blocks (text,
tool_use) with a required `max_tokens` cap. The SDK's stream helper assembles
the blocks; this module forwards the text deltas and converts the final message.
A stream that ends before `message_stop` was cut off (the connection or the
server died mid-answer): that is a ModelError, never a complete answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Literal

import anthropic
from anthropic.types import (
    ContentBlockParam,
    MessageParam,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)

from stigmer.runtime.contract import (
    NO_SAMPLING,
    DeltaCallback,
    ModelError,
    ModelErrorKind,
    ModelSettings,
    Sampling,
)
from stigmer.runtime.conversation import (
    AssistantMessage,
    Message,
    ModelTurn,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
    new_call_id,
)
from stigmer.runtime.model_errors import SDK_FAILURES, model_error_from
from stigmer.runtime.model_windows import known_window
from stigmer.runtime.token_count import ESTIMATE

__all__ = ["AnthropicChatProvider", "anthropic_messages", "anthropic_tools", "anthropic_turn"]

# Anthropic requires a cap on the reply; every current Claude model allows at least this.
ANTHROPIC_MAX_TOKENS = 4096


def anthropic_messages(messages: Sequence[Message]) -> list[MessageParam]:
    """The conversation in messages-API shape.

    Tool results travel as `tool_result` blocks of a user turn, and consecutive
    turns of one role are merged, because the API wants every result of an
    assistant turn in the single user turn that follows it. Empty text blocks
    are left out: the API rejects them.
    """
    turns: list[tuple[Literal["user", "assistant"], list[ContentBlockParam]]] = []
    for message in messages:
        role: Literal["user", "assistant"]
        blocks: list[ContentBlockParam] = []
        match message:
            case UserMessage(content=content):
                role = "user"
                blocks.extend(_text_blocks(content))
            case ToolResultMessage(call_id=call_id, content=content, is_error=is_error):
                role = "user"
                result: ToolResultBlockParam = {
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": content,
                    "is_error": is_error,
                }
                blocks.append(result)
            case AssistantMessage(content=content, tool_calls=calls):
                role = "assistant"
                blocks.extend(_text_blocks(content))
                for call in calls:
                    use: ToolUseBlockParam = {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": dict(call.arguments),
                    }
                    blocks.append(use)
        if not blocks:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    shaped: list[MessageParam] = []
    for role, blocks in turns:
        if role == "user":
            shaped.append({"role": "user", "content": blocks})
        else:
            shaped.append({"role": "assistant", "content": blocks})
    return shaped


def _text_blocks(text: str) -> list[TextBlockParam]:
    return [{"type": "text", "text": text}] if text else []


def anthropic_tools(tools: Sequence[ToolSpec]) -> list[ToolParam]:
    return [
        {
            "name": tool.name,
            "description": tool.description,
            "input_schema": dict(tool.input_schema),
        }
        for tool in tools
    ]


class AnthropicChatProvider:
    """The messages API over `anthropic.AsyncAnthropic`, streamed."""

    def __init__(self, settings: ModelSettings) -> None:
        if not settings.api_key:
            raise ModelError(
                "the anthropic provider needs an API key "
                "(STIGMER_LLM_API_KEY or ANTHROPIC_API_KEY)",
                kind=ModelErrorKind.CONFIG,
            )
        self._model = settings.model
        self._timeout = settings.timeout_seconds
        self._client = anthropic.AsyncAnthropic(
            base_url=settings.base_url or None,
            api_key=settings.api_key,
            max_retries=0,
            timeout=settings.timeout_seconds,
        )
        self.endpoint = str(self._client.base_url).rstrip("/")

    async def context_window(self) -> int | None:
        return known_window(self._model)

    async def count_tokens(self, text: str) -> int | None:
        # Anthropic counts tokens only through a paid API call: the estimate serves.
        return None

    @property
    def token_counter(self) -> str:
        return ESTIMATE

    async def stream_turn(
        self,
        *,
        system: str,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        on_delta: DeltaCallback,
        sampling: Sampling = NO_SAMPLING,
    ) -> ModelTurn:
        events = self._events(
            system, anthropic_messages(messages), anthropic_tools(tools), sampling
        )
        final: anthropic.types.Message | None = None
        async with aclosing(events):
            async for event in events:
                if isinstance(event, str):
                    await on_delta(event)
                else:
                    final = event
        if final is None:
            raise ModelError(
                f"model endpoint {self.endpoint} ended the reply without a message",
                kind=ModelErrorKind.MALFORMED,
            )
        return anthropic_turn(final)

    async def _events(
        self,
        system: str,
        messages: list[MessageParam],
        tools: list[ToolParam],
        sampling: Sampling,
    ) -> AsyncGenerator[str | anthropic.types.Message, None]:
        """Text deltas, then the complete message; SDK failures mapped on the way."""
        try:
            async with self._client.messages.stream(
                model=self._model,
                max_tokens=sampling.max_tokens or ANTHROPIC_MAX_TOKENS,
                # This SDK's stream() has no temperature parameter; the API takes one.
                extra_body=(
                    {"temperature": sampling.temperature}
                    if sampling.temperature is not None
                    else None
                ),
                system=system if system else anthropic.omit,
                messages=messages,
                tools=tools if tools else anthropic.omit,
            ) as stream:
                is_stopped = False
                async for event in stream:
                    if event.type == "text":
                        yield event.text
                    is_stopped = is_stopped or event.type == "message_stop"
                if not is_stopped:
                    raise ModelError(
                        f"model endpoint {self.endpoint} ended the answer before it was "
                        "finished (the stream stopped before message_stop)",
                        kind=ModelErrorKind.INTERRUPTED,
                    )
                yield await stream.get_final_message()
        except SDK_FAILURES as exc:
            raise model_error_from(exc, endpoint=self.endpoint, timeout=self._timeout) from exc

    async def aclose(self) -> None:
        await self._client.close()


def anthropic_turn(message: anthropic.types.Message) -> ModelTurn:
    """The complete reply; cached prompt tokens count as input, as they are billed."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            if not isinstance(block.input, dict):
                raise ModelError(
                    f"model sent arguments for tool {block.name!r} that are not a JSON object",
                    kind=ModelErrorKind.MALFORMED,
                )
            calls.append(
                ToolCall(id=block.id or new_call_id(), name=block.name, arguments=block.input)
            )
    usage = message.usage
    input_tokens = (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )
    return ModelTurn(
        content="".join(texts),
        tool_calls=tuple(calls),
        input_tokens=input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cache_read_input_tokens,
    )
