"""Model providers: error mapping over real HTTP, and the shapes each SDK is given."""

from __future__ import annotations

import asyncio

import anthropic.types
import httpx2
import pytest

from stigmer.local_ports import free_local_port
from stigmer.runtime.anthropic_chat import (
    AnthropicChatProvider,
    anthropic_messages,
    anthropic_tools,
    anthropic_turn,
)
from stigmer.runtime.contract import ChatProvider, ModelError, ModelErrorKind, ModelSettings
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
from stigmer.runtime.model_errors import model_error_from
from stigmer.runtime.openai_chat import OpenAIChatProvider, openai_messages, openai_tools
from stigmer.runtime.providers import OLLAMA_BASE_URL, provider_for
from stigmer.testing.scripted_model import Reply, ScriptedModel
from tests.runtime.anthropic_stream import CannedAnthropic, text_reply, tool_use_reply

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
    assert raised.value.kind is ModelErrorKind.AUTH
    assert raised.value.status == 401
    assert str(raised.value) == (
        f"model endpoint {base_url} rejected the API key (HTTP 401): Incorrect API key provided"
    )


def test_a_model_slower_than_its_timeout_is_a_model_error_naming_the_timeout() -> None:
    with ScriptedModel([Reply(content="late", delay_seconds=10)]) as model:
        base_url = model.base_url
        settings = ModelSettings(
            provider="openai", model="gpt", base_url=base_url, timeout_seconds=0.3
        )
        with pytest.raises(ModelError) as raised:
            stream_once(OpenAIChatProvider(settings))
    assert raised.value.kind is ModelErrorKind.TIMEOUT
    assert raised.value.status is None
    assert str(raised.value) == f"model endpoint {base_url} timed out after 0.3 s"


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
    assert raised.value.kind is ModelErrorKind.STATUS
    assert raised.value.status == 404
    assert str(raised.value) == (
        "model returned HTTP 404: scripted model: no route for POST /v1/messages"
    )


def test_an_unreachable_anthropic_endpoint_is_a_model_error_saying_so() -> None:
    base_url = f"http://127.0.0.1:{free_local_port()}"
    settings = ModelSettings(provider="anthropic", model="claude", base_url=base_url, api_key="k")
    with pytest.raises(ModelError) as raised:
        stream_once(AnthropicChatProvider(settings))
    assert raised.value.kind is ModelErrorKind.UNREACHABLE
    assert str(raised.value) == f"model endpoint {base_url} unreachable: connection refused"


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (httpx2.ReadTimeout("read timed out"), ModelErrorKind.TIMEOUT),
        (httpx2.ConnectError("[Errno 111] Connection refused"), ModelErrorKind.UNREACHABLE),
        (httpx2.RemoteProtocolError("peer closed connection"), ModelErrorKind.INTERRUPTED),
        (ValueError("Expecting value: line 1 column 1"), ModelErrorKind.MALFORMED),
        (httpx2.DecodingError("invalid gzip data"), ModelErrorKind.OTHER),
    ],
    ids=["timeout", "unreachable", "interrupted", "malformed", "other"],
)
def test_an_http_failure_mid_stream_has_the_kind_of_its_table_row(
    failure: Exception, kind: ModelErrorKind
) -> None:
    error = model_error_from(failure, endpoint="http://127.0.0.1:9/v1", timeout=5)
    assert error.kind is kind
    assert error.status is None


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
    with pytest.raises(ModelError) as unknown:
        provider_for(ModelSettings(provider="gemini", model="m"))
    with pytest.raises(ModelError) as keyless:
        provider_for(ModelSettings(provider="anthropic", model="m"))
    assert unknown.value.kind is ModelErrorKind.CONFIG
    assert "'gemini'" in str(unknown.value)
    assert keyless.value.kind is ModelErrorKind.CONFIG
    assert "ANTHROPIC_API_KEY" in str(keyless.value)


def test_tool_arguments_must_be_a_json_object_and_empty_means_none() -> None:
    assert tool_arguments_from_json("add", '{"a": 2}') == {"a": 2}
    assert tool_arguments_from_json("crash", "") == {}
    with pytest.raises(ModelError) as unparsable:
        tool_arguments_from_json("add", '{"a": 2')
    with pytest.raises(ModelError) as not_an_object:
        tool_arguments_from_json("add", "[2, 3]")
    assert unparsable.value.kind is ModelErrorKind.MALFORMED
    assert not_an_object.value.kind is ModelErrorKind.MALFORMED
    assert "'add'" in str(unparsable.value)


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
        cached_tokens=100,
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
        with pytest.raises(ModelError) as raised:
            stream_once(AnthropicChatProvider(settings))
    assert raised.value.kind is ModelErrorKind.MALFORMED


def test_an_openai_stream_cut_before_its_finish_reason_is_a_model_error() -> None:
    with ScriptedModel([Reply(content="The answer is forty", is_cut=True)]) as model:
        provider = OpenAIChatProvider(
            ModelSettings(provider="openai", model="scripted", base_url=model.base_url)
        )
        with pytest.raises(ModelError, match="ended the answer before it was finished"):
            stream_once(provider)


@pytest.mark.parametrize("kept", [3, -2, -1], ids=["mid-text", "before-delta", "before-stop"])
def test_an_anthropic_stream_cut_before_message_stop_is_a_model_error(kept: int) -> None:
    # The events: message_start, block start, text deltas, block stop,
    # message_delta (the stop_reason), message_stop.
    events = text_reply("The answer ", "is forty", "-two.")
    with CannedAnthropic([events[:kept]]) as canned:
        provider = AnthropicChatProvider(
            ModelSettings(
                provider="anthropic", model="claude", base_url=canned.base_url, api_key="k"
            )
        )
        with pytest.raises(ModelError, match="ended the answer before it was finished"):
            stream_once(provider)
