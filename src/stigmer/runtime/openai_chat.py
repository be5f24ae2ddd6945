"""The OpenAI-compatible provider: chat completions, streamed, through `openai.AsyncOpenAI`.

It serves OpenAI and every server that speaks its protocol (Ollama, llama.cpp,
vLLM). Text arrives as deltas, forwarded at once; tool calls arrive as pieces
keyed by index (an id and name first, the JSON arguments in fragments) and are
assembled here; usage comes in a last chunk because the request asks for it.
A stream that ends before its answer's `finish_reason` was cut off (the
connection or the server died mid-answer): that is a ModelError, never a
complete answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Literal

import openai
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
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
    tool_arguments_from_json,
)
from stigmer.runtime.model_errors import SDK_FAILURES, model_error_from
from stigmer.runtime.model_windows import EndpointWindow

__all__ = ["OpenAIChatProvider", "openai_messages", "openai_tools"]

# Local OpenAI-compatible servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"

# Whether the model may (auto), must (required) or must not (none) call a tool this turn.
ToolChoice = Literal["auto", "required", "none"]


def openai_messages(system: str, messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    """The conversation in chat-completions shape, the system prompt first."""
    shaped: list[ChatCompletionMessageParam] = []
    if system:
        shaped.append({"role": "system", "content": system})
    for message in messages:
        match message:
            case UserMessage(content=content):
                shaped.append({"role": "user", "content": content})
            case ToolResultMessage(call_id=call_id, content=content):
                shaped.append({"role": "tool", "tool_call_id": call_id, "content": content})
            case AssistantMessage(content=content, tool_calls=()):
                shaped.append({"role": "assistant", "content": content})
            case AssistantMessage(content=content, tool_calls=calls):
                tool_calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                    }
                    for call in calls
                ]
                shaped.append(
                    {"role": "assistant", "content": content or None, "tool_calls": tool_calls}
                )
    return shaped


def openai_tools(tools: Sequence[ToolSpec]) -> list[ChatCompletionFunctionToolParam]:
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.input_schema),
            },
        }
        for tool in tools
    ]


@dataclass
class _PartialCall:
    """A tool call assembled from streamed pieces (its arguments arrive in fragments)."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIChatProvider:
    """Chat completions over `openai.AsyncOpenAI`, streamed, usage included."""

    def __init__(self, settings: ModelSettings, *, default_base_url: str | None = None) -> None:
        self._model = settings.model
        self._timeout = settings.timeout_seconds
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url or default_base_url,
            api_key=settings.api_key or PLACEHOLDER_API_KEY,
            max_retries=0,
            timeout=settings.timeout_seconds,
        )
        self.endpoint = str(self._client.base_url).rstrip("/")
        self._window = EndpointWindow(self.endpoint, settings.model, settings.api_key)

    async def context_window(self) -> int | None:
        return await self._window.context_window()

    async def count_tokens(self, text: str) -> int | None:
        return await self._window.count_tokens(text)

    @property
    def token_counter(self) -> str:
        return self._window.token_counter

    async def stream_turn(
        self,
        *,
        system: str,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        on_delta: DeltaCallback,
        sampling: Sampling = NO_SAMPLING,
        tool_choice: ToolChoice = "auto",
    ) -> ModelTurn:
        content: list[str] = []
        partial_calls: dict[int, _PartialCall] = {}
        input_tokens: int | None = None
        output_tokens: int | None = None
        cached_tokens: int | None = None
        reasoning_tokens: int | None = None
        finish_reason: str | None = None
        chunks = self._chunks(
            openai_messages(system, messages), openai_tools(tools), tool_choice, sampling
        )
        async with aclosing(chunks):
            async for chunk in chunks:
                if chunk.usage is not None:
                    input_tokens = chunk.usage.prompt_tokens
                    output_tokens = chunk.usage.completion_tokens
                    prompt_details = chunk.usage.prompt_tokens_details
                    if prompt_details is not None:
                        cached_tokens = prompt_details.cached_tokens
                    completion_details = chunk.usage.completion_tokens_details
                    if completion_details is not None:
                        reasoning_tokens = completion_details.reasoning_tokens
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    finish_reason = choice.finish_reason or finish_reason
                    delta = choice.delta
                    for piece in delta.tool_calls or ():
                        call = partial_calls.setdefault(piece.index, _PartialCall())
                        call.id = piece.id or call.id
                        if piece.function is not None:
                            call.name = piece.function.name or call.name
                            call.arguments.append(piece.function.arguments or "")
                    if delta.content:
                        content.append(delta.content)
                        await on_delta(delta.content)
        if finish_reason is None:
            raise ModelError(
                f"model endpoint {self.endpoint} ended the answer before it was finished "
                "(the stream stopped without a finish_reason)",
                kind=ModelErrorKind.INTERRUPTED,
            )
        return ModelTurn(
            content="".join(content),
            tool_calls=tuple(_finish_call(partial_calls[index]) for index in sorted(partial_calls)),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            reasoning_tokens=reasoning_tokens,
        )

    async def _chunks(
        self,
        messages: list[ChatCompletionMessageParam],
        tools: list[ChatCompletionFunctionToolParam],
        tool_choice: ToolChoice,
        sampling: Sampling,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The SDK's stream with its failures mapped; the caller's own errors never pass here."""
        try:
            stream = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                # Some servers reject an empty tool list, so offer tools only when there are some.
                tools=tools if tools else openai.omit,
                tool_choice=tool_choice if tools and tool_choice != "auto" else openai.omit,
                temperature=(
                    sampling.temperature if sampling.temperature is not None else openai.omit
                ),
                max_tokens=sampling.max_tokens or openai.omit,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                async for chunk in stream:
                    yield chunk
        except SDK_FAILURES as exc:
            raise model_error_from(exc, endpoint=self.endpoint, timeout=self._timeout) from exc

    async def aclose(self) -> None:
        await self._client.close()


def _finish_call(call: _PartialCall) -> ToolCall:
    if not call.name:
        raise ModelError(
            "model asked for a tool call without a tool name", kind=ModelErrorKind.MALFORMED
        )
    arguments = tool_arguments_from_json(call.name, "".join(call.arguments))
    return ToolCall(id=call.id or new_call_id(), name=call.name, arguments=arguments)
