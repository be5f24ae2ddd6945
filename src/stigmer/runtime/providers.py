"""Model providers: one streaming chat call through an official SDK.

    ChatProvider (Protocol)
    ├── OpenAIChatProvider      any OpenAI-compatible endpoint: OpenAI, Ollama, llama.cpp, vLLM
    └── AnthropicChatProvider   Anthropic's messages API

A provider does one thing: send the conversation and the tool schemas, forward
the text to a callback as it streams, and return the complete turn. Shapes are
converted by pure functions (`openai_messages`, `anthropic_messages`, ...) so
they can be read and tested without a network.

Providers never retry (`max_retries=0`): whether a failed model call is worth
repeating is the engine's decision, and a hidden retry would resend a request
the user already pays for. Every SDK failure becomes a `ModelError` in one
place, `model_error_from`, whose table says what the user is told.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anthropic
import httpx2
import openai
from anthropic.types import (
    ContentBlockParam,
    MessageParam,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)

from stigmer.runtime.contract import ModelError, ModelSettings
from stigmer.runtime.conversation import (
    AssistantMessage,
    Message,
    ModelTurn,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)

__all__ = [
    "AnthropicChatProvider",
    "ChatProvider",
    "DeltaCallback",
    "OpenAIChatProvider",
    "anthropic_messages",
    "anthropic_tools",
    "anthropic_turn",
    "model_error_from",
    "openai_messages",
    "openai_tools",
    "provider_for",
    "tool_arguments_from_json",
]

DeltaCallback = Callable[[str], Awaitable[None]]

# Local OpenAI-compatible servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"
OLLAMA_BASE_URL = "http://localhost:11434/v1"
# Anthropic requires a cap on the reply; every current Claude model allows at least this.
ANTHROPIC_MAX_TOKENS = 4096


class ChatProvider(Protocol):
    """One model behind one endpoint; the agent loop's only view of an LLM."""

    async def stream_turn(
        self,
        *,
        system: str,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        on_delta: DeltaCallback,
    ) -> ModelTurn:
        """Sends the conversation, awaits `on_delta` for each text piece, returns the turn.

        Raises:
            ModelError: the model could not answer (unreachable, timeout, HTTP error,
                malformed reply). Exceptions raised by `on_delta` propagate unchanged.
        """
        ...

    async def aclose(self) -> None:
        """Releases the HTTP connections."""
        ...


def provider_for(settings: ModelSettings) -> ChatProvider:
    """The provider named by the settings.

    "openai" is any OpenAI-compatible endpoint; "ollama" and "local" are the same
    protocol, defaulting to Ollama on localhost.

    Raises:
        ModelError: unknown provider, or Anthropic without an API key.
    """
    match settings.provider.lower():
        case "openai":
            return OpenAIChatProvider(settings)
        case "ollama" | "local":
            return OpenAIChatProvider(settings, default_base_url=OLLAMA_BASE_URL)
        case "anthropic":
            return AnthropicChatProvider(settings)
        case other:
            raise ModelError(
                f"unknown model provider {other!r}: expected openai, anthropic, ollama or local"
            )


# -- errors ------------------------------------------------------------------------------------

_SDK_FAILURES = (openai.OpenAIError, anthropic.AnthropicError, httpx2.HTTPError, ValueError)

# First match wins, so subclasses come before their bases. Placeholders: {endpoint},
# {cause} (the innermost reason), {status}, {message} (the server's own words), {timeout}.
_ERROR_TABLE: tuple[tuple[tuple[type[Exception], ...], str], ...] = (
    (
        (openai.APITimeoutError, anthropic.APITimeoutError, httpx2.TimeoutException),
        "model endpoint {endpoint} timed out after {timeout:g} s",
    ),
    (
        (openai.APIConnectionError, anthropic.APIConnectionError, httpx2.ConnectError),
        "model endpoint {endpoint} unreachable: {cause}",
    ),
    (
        (openai.AuthenticationError, anthropic.AuthenticationError),
        "model endpoint {endpoint} rejected the API key (HTTP {status}): {message}",
    ),
    ((openai.APIStatusError, anthropic.APIStatusError), "model returned HTTP {status}: {message}"),
    (
        (httpx2.TransportError,),
        "connection to model endpoint {endpoint} broke mid-reply: {cause}",
    ),
    (
        (openai.APIResponseValidationError, anthropic.APIResponseValidationError, ValueError),
        "model endpoint {endpoint} sent a malformed reply: {message}",
    ),
    (
        (openai.OpenAIError, anthropic.AnthropicError, httpx2.HTTPError),
        "model call failed: {message}",
    ),
)


def model_error_from(exc: Exception, *, endpoint: str, timeout: float) -> ModelError:
    """The `ModelError` a user is shown for an SDK (or HTTP) failure."""
    status = getattr(exc, "status_code", "?")
    facts = {
        "endpoint": endpoint,
        "cause": _innermost_reason(exc),
        "status": status,
        "message": _server_message(exc),
        "timeout": timeout,
    }
    for types, template in _ERROR_TABLE:
        if isinstance(exc, types):
            return ModelError(template.format(**facts))
    return ModelError(f"model call failed: {type(exc).__name__}: {exc}")


def _innermost_reason(exc: BaseException) -> str:
    """Why a connection failed, in words: the SDKs wrap the socket error several times."""
    reason = str(exc)
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return f"host not found ({current.strerror})"
        if str(current):
            reason = str(current)
        current = current.__cause__ or current.__context__
    return reason


def _server_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return str(getattr(exc, "message", None) or exc)


def tool_arguments_from_json(tool_name: str, text: str) -> dict[str, Any]:
    """A tool call's arguments as the model wrote them; empty text means no arguments.

    Raises:
        ModelError: the text is not a JSON object.
    """
    try:
        arguments = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ModelError(
            f"model sent malformed JSON arguments for tool {tool_name!r}: {exc}: {text[:200]!r}"
        ) from exc
    if not isinstance(arguments, dict):
        raise ModelError(
            f"model sent arguments for tool {tool_name!r} that are not a JSON object: "
            f"{text[:200]!r}"
        )
    return arguments


def _new_call_id() -> str:
    # Some local servers stream tool calls without ids; results must still be matched to calls.
    return f"call_{uuid.uuid4().hex[:24]}"


# -- OpenAI-compatible -------------------------------------------------------------------------


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

    async def stream_turn(
        self,
        *,
        system: str,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        on_delta: DeltaCallback,
    ) -> ModelTurn:
        content: list[str] = []
        partial_calls: dict[int, _PartialCall] = {}
        input_tokens: int | None = None
        output_tokens: int | None = None
        chunks = self._chunks(openai_messages(system, messages), openai_tools(tools))
        async with aclosing(chunks):
            async for chunk in chunks:
                if chunk.usage is not None:
                    input_tokens = chunk.usage.prompt_tokens
                    output_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
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
        return ModelTurn(
            content="".join(content),
            tool_calls=tuple(_finish_call(partial_calls[index]) for index in sorted(partial_calls)),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )

    async def _chunks(
        self,
        messages: list[ChatCompletionMessageParam],
        tools: list[ChatCompletionFunctionToolParam],
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The SDK's stream with its failures mapped; the caller's own errors never pass here."""
        try:
            stream = await self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                # Some servers reject an empty tool list, so offer tools only when there are some.
                tools=tools if tools else openai.omit,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                async for chunk in stream:
                    yield chunk
        except _SDK_FAILURES as exc:
            raise model_error_from(exc, endpoint=self.endpoint, timeout=self._timeout) from exc

    async def aclose(self) -> None:
        await self._client.close()


def _finish_call(call: _PartialCall) -> ToolCall:
    if not call.name:
        raise ModelError("model asked for a tool call without a tool name")
    arguments = tool_arguments_from_json(call.name, "".join(call.arguments))
    return ToolCall(id=call.id or _new_call_id(), name=call.name, arguments=arguments)


# -- Anthropic ---------------------------------------------------------------------------------


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
                "the anthropic provider needs an API key (STIGMER_LLM_API_KEY or ANTHROPIC_API_KEY)"
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

    async def stream_turn(
        self,
        *,
        system: str,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        on_delta: DeltaCallback,
    ) -> ModelTurn:
        events = self._events(system, anthropic_messages(messages), anthropic_tools(tools))
        final: anthropic.types.Message | None = None
        async with aclosing(events):
            async for event in events:
                if isinstance(event, str):
                    await on_delta(event)
                else:
                    final = event
        if final is None:
            raise ModelError(f"model endpoint {self.endpoint} ended the reply without a message")
        return anthropic_turn(final)

    async def _events(
        self, system: str, messages: list[MessageParam], tools: list[ToolParam]
    ) -> AsyncGenerator[str | anthropic.types.Message, None]:
        """Text deltas, then the complete message; SDK failures mapped on the way."""
        try:
            async with self._client.messages.stream(
                model=self._model,
                max_tokens=ANTHROPIC_MAX_TOKENS,
                system=system if system else anthropic.omit,
                messages=messages,
                tools=tools if tools else anthropic.omit,
            ) as stream:
                async for event in stream:
                    if event.type == "text":
                        yield event.text
                yield await stream.get_final_message()
        except _SDK_FAILURES as exc:
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
                    f"model sent arguments for tool {block.name!r} that are not a JSON object"
                )
            calls.append(
                ToolCall(id=block.id or _new_call_id(), name=block.name, arguments=block.input)
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
    )
