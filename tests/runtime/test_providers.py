"""Model providers: error mapping over real HTTP, and the shapes each SDK is given."""

from __future__ import annotations

import asyncio

import anthropic.types
import pytest

from stigmer.runtime.anthropic_chat import (
    AnthropicChatProvider,
    anthropic_messages,
    anthropic_tools,
    anthropic_turn,
)
from stigmer.runtime.contract import ChatProvider, ModelError, ModelSettings
from stigmer.runtime.conversation import (
    AssistantMessage,
    Message,
    ModelTurn,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
    tool_arguments_from_json,
)
from stigmer.runtime.openai_chat import OpenAIChatProvider, openai_messages, openai_tools
from stigmer.runtime.providers import OLLAMA_BASE_URL, provider_for
from stigmer.testing.scripted_model import Reply, ScriptedModel
from tests.runtime.anthropic_stream import CannedAnthropic, tool_use_reply
from tests.runtime.servers import free_port

ADD = ToolSpec(
    name="add",
    description="Return the sum of a and b.",
    input_schema={"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
)

CONVERSATION: list[Message] = [
    UserMessage("What is 2 + 3, and 4 + 4?"),
    AssistantMessage(
        "Let me add.",
        (ToolCall("call_1", "add", {"a": 2, "b": 3}), ToolCall("call_2", "add", {"a": 4})),
    ),
    ToolResultMessage("call_1", "5"),
    ToolResultMessage("call_2", "Error executing tool add: b is required", is_error=True),
    UserMessage("Hurry up."),
    AssistantMessage("", (ToolCall("call_3", "add", {"a": 4, "b": 4}),)),
    ToolResultMessage("call_3", "8"),
]


async def ignore_delta(text: str) -> None:
    pass


def stream_once(provider: ChatProvider) -> ModelTurn:
    async def scenario() -> ModelTurn:
        try:
            return await provider.stream_turn(
                system="Be brief.",
                messages=[UserMessage("hi")],
                tools=[ADD],
                on_delta=ignore_delta,
            )
        finally:
            await provider.aclose()

    return asyncio.run(scenario())


def test_a_rejected_api_key_is_a_model_error_that_says_so() -> None:
    with ScriptedModel([Reply(status=401, content="Incorrect API key provided")]) as model:
        base_url = model.base_url
        settings = ModelSettings(provider="openai", model="gpt", base_url=base_url)
        with pytest.raises(ModelError) as raised:
            stream_once(OpenAIChatProvider(settings))
    assert str(raised.value) == (
        f"model endpoint {base_url} rejected the API key (HTTP 401): Incorrect API key provided"
    )


def test_a_model_slower_than_its_timeout_is_a_model_error_naming_the_timeout() -> None:
    with ScriptedModel([Reply(content="late", delay_seconds=10)]) as model:
        settings = ModelSettings(
            provider="openai", model="gpt", base_url=model.base_url, timeout_seconds=0.3
        )
        with pytest.raises(ModelError, match=r"timed out after 0\.3 s"):
            stream_once(OpenAIChatProvider(settings))


def test_the_openai_provider_offers_tools_in_function_shape() -> None:
    with ScriptedModel([Reply(content="hello")]) as model:
        settings = ModelSettings(provider="openai", model="gpt", base_url=model.base_url)
        turn = stream_once(OpenAIChatProvider(settings))
    assert turn == ModelTurn(content="hello", input_tokens=10, output_tokens=5)
    assert model.requests[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Return the sum of a and b.",
                "parameters": dict(ADD.input_schema),
            },
        }
    ]
    assert model.requests[0]["model"] == "gpt"


def test_an_anthropic_http_error_is_a_model_error_with_status_and_message() -> None:
    # The scripted model speaks only chat completions, so the messages API gets its 404.
    with ScriptedModel() as model:
        base_url = model.base_url.removesuffix("/v1")
        settings = ModelSettings(
            provider="anthropic", model="claude", base_url=base_url, api_key="key"
        )
        with pytest.raises(ModelError) as raised:
            stream_once(AnthropicChatProvider(settings))
    assert str(raised.value) == (
        "model returned HTTP 404: scripted model: no route for POST /v1/messages"
    )


def test_an_unreachable_anthropic_endpoint_is_a_model_error_saying_so() -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    settings = ModelSettings(provider="anthropic", model="claude", base_url=base_url, api_key="k")
    with pytest.raises(ModelError) as raised:
        stream_once(AnthropicChatProvider(settings))
    assert str(raised.value) == f"model endpoint {base_url} unreachable: connection refused"


def test_provider_for_picks_the_sdk_by_provider_name() -> None:
    async def scenario() -> None:
        openai_compatible = provider_for(ModelSettings(provider="openai", model="m"))
        ollama = provider_for(ModelSettings(provider="ollama", model="llama3"))
        claude = provider_for(ModelSettings(provider="anthropic", model="c", api_key="k"))
        try:
            assert isinstance(openai_compatible, OpenAIChatProvider)
            assert openai_compatible.endpoint == "https://api.openai.com/v1"
            assert isinstance(ollama, OpenAIChatProvider)
            assert ollama.endpoint == OLLAMA_BASE_URL
            assert isinstance(claude, AnthropicChatProvider)
        finally:
            for provider in (openai_compatible, ollama, claude):
                await provider.aclose()

    asyncio.run(scenario())


def test_an_unknown_provider_or_an_anthropic_provider_without_key_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="unknown model provider 'gemini'"):
        provider_for(ModelSettings(provider="gemini", model="m"))
    with pytest.raises(ModelError, match="anthropic provider needs an API key"):
        provider_for(ModelSettings(provider="anthropic", model="m"))


def test_tool_arguments_must_be_a_json_object_and_empty_means_none() -> None:
    assert tool_arguments_from_json("add", '{"a": 2}') == {"a": 2}
    assert tool_arguments_from_json("crash", "") == {}
    with pytest.raises(ModelError, match="malformed JSON arguments for tool 'add'"):
        tool_arguments_from_json("add", '{"a": 2')
    with pytest.raises(ModelError, match="not a JSON object"):
        tool_arguments_from_json("add", "[2, 3]")


def test_openai_messages_put_the_system_prompt_first_and_tool_results_after_their_call() -> None:
    shaped = openai_messages("Be brief.", CONVERSATION)
    assert shaped == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 3, and 4 + 4?"},
        {
            "role": "assistant",
            "content": "Let me add.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 4}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": "Error executing tool add: b is required",
        },
        {"role": "user", "content": "Hurry up."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_3",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 4, "b": 4}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_3", "content": "8"},
    ]
    assert openai_messages("", [UserMessage("hi")]) == [{"role": "user", "content": "hi"}]
    assert openai_tools([ADD])[0]["function"]["name"] == "add"


def test_anthropic_messages_carry_tool_results_in_one_user_turn_after_the_tool_use() -> None:
    assert anthropic_messages(CONVERSATION) == [
        {"role": "user", "content": [{"type": "text", "text": "What is 2 + 3, and 4 + 4?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me add."},
                {"type": "tool_use", "id": "call_1", "name": "add", "input": {"a": 2, "b": 3}},
                {"type": "tool_use", "id": "call_2", "name": "add", "input": {"a": 4}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "5", "is_error": False},
                {
                    "type": "tool_result",
                    "tool_use_id": "call_2",
                    "content": "Error executing tool add: b is required",
                    "is_error": True,
                },
                {"type": "text", "text": "Hurry up."},
            ],
        },
        {
            # No empty text block: the API rejects them.
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_3", "name": "add", "input": {"a": 4, "b": 4}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_3", "content": "8", "is_error": False}
            ],
        },
    ]


def test_anthropic_tools_carry_the_input_schema() -> None:
    assert anthropic_tools([ADD]) == [
        {
            "name": "add",
            "description": "Return the sum of a and b.",
            "input_schema": dict(ADD.input_schema),
        }
    ]


def test_an_anthropic_reply_becomes_text_tool_calls_and_usage() -> None:
    message = anthropic.types.Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude",
            "content": [
                {"type": "text", "text": "Let me add."},
                {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 2, "b": 3}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 7, "cache_read_input_tokens": 100},
        }
    )
    assert anthropic_turn(message) == ModelTurn(
        content="Let me add.",
        tool_calls=(ToolCall("toolu_1", "add", {"a": 2, "b": 3}),),
        input_tokens=112,
        output_tokens=7,
    )


def test_the_anthropic_provider_streams_text_and_assembles_the_tool_use() -> None:
    deltas: list[str] = []

    async def collect(text: str) -> None:
        deltas.append(text)

    reply = tool_use_reply("Let me add.", "toolu_1", "add", '{"a": 2,', ' "b": 3}')
    with CannedAnthropic([reply]) as canned:
        provider = AnthropicChatProvider(
            ModelSettings(
                provider="anthropic", model="claude", base_url=canned.base_url, api_key="k"
            )
        )

        async def scenario() -> ModelTurn:
            try:
                return await provider.stream_turn(
                    system="Be brief.", messages=CONVERSATION, tools=[ADD], on_delta=collect
                )
            finally:
                await provider.aclose()

        turn = asyncio.run(scenario())

    assert turn == ModelTurn(
        content="Let me add.",
        tool_calls=(ToolCall("toolu_1", "add", {"a": 2, "b": 3}),),
        input_tokens=25,
        output_tokens=9,
    )
    assert deltas == ["Let me add."]
    [body] = canned.requests
    assert body["system"] == "Be brief."
    assert body["model"] == "claude"
    assert body["stream"] is True
    assert body["tools"] == anthropic_tools([ADD])
    assert body["messages"] == anthropic_messages(CONVERSATION)


def test_malformed_tool_input_from_anthropic_is_a_model_error() -> None:
    reply = tool_use_reply("", "toolu_1", "add", "{a: 2}")
    with CannedAnthropic([reply]) as canned:
        settings = ModelSettings(
            provider="anthropic", model="claude", base_url=canned.base_url, api_key="k"
        )
        with pytest.raises(ModelError, match="malformed"):
            stream_once(AnthropicChatProvider(settings))
