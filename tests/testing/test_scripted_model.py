"""The scripted model answers the real `openai` client over real HTTP, as the script says."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall, ChatCompletionToolParam

from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep

ADD_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Adds two numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as running:
        yield running


@pytest.fixture
def client(model: ScriptedModel) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=model.base_url, api_key="test", max_retries=0) as connected:
        yield connected


def ask(client: openai.OpenAI, text: str = "hello") -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": text}]
    )


def test_non_streaming_reply_returns_the_content_and_usage(
    model: ScriptedModel, client: openai.OpenAI
) -> None:
    model.add(Reply(content="Hello, world!", input_tokens=7, output_tokens=3))

    completion = ask(client)

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello, world!"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)
    assert completion.usage.total_tokens == 10


def test_streaming_reply_arrives_in_chunks_that_make_up_the_content_then_usage(
    model: ScriptedModel, client: openai.OpenAI
) -> None:
    model.add(Reply(content="The quick brown fox.", input_tokens=11, output_tokens=4))

    with client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "tell me"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)

    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert pieces == ["The ", "quic", "k br", "own ", "fox."]
    assert "".join(pieces) == "The quick brown fox."
    finish_reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish_reasons[-1] == "stop"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (11, 4)
    assert usage_chunk.usage.total_tokens == 15


def test_streaming_without_include_usage_sends_no_usage_chunk(
    model: ScriptedModel, client: openai.OpenAI
) -> None:
    model.add(Reply(content="abc"))

    with client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as stream:
        chunks = list(stream)

    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tool_call_reply_gives_tool_calls_with_name_and_json_arguments(
    model: ScriptedModel, client: openai.OpenAI
) -> None:
    model.add(
        Reply(
            tool_calls=(
                ToolCallStep("add", {"a": 1, "b": 2}),
                ToolCallStep("add", {"a": 3, "b": 4}, id="call_mine"),
            )
        )
    )

    completion = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "1+2 and 3+4?"}], tools=[ADD_TOOL]
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    calls = choice.message.tool_calls
    assert all(isinstance(call, ChatCompletionMessageFunctionToolCall) for call in calls)
    function_calls = [
        call for call in calls if isinstance(call, ChatCompletionMessageFunctionToolCall)
    ]
    assert [call.id for call in function_calls] == ["call_1", "call_mine"]
    assert [call.function.name for call in function_calls] == ["add", "add"]
    assert [json.loads(call.function.arguments) for call in function_calls] == [
        {"a": 1, "b": 2},
        {"a": 3, "b": 4},
    ]


def test_streamed_tool_call_reply_assembles_into_name_and_json_arguments(
    model: ScriptedModel, client: openai.OpenAI
) -> None:
    model.add(
        Reply(
            content="Let me add.",
            tool_calls=(
                ToolCallStep("add", {"a": 1, "b": 2}),
                ToolCallStep("lookup", {"query": "weather in Zürich"}),
            ),
        )
    )

    calls: dict[int, dict[str, str]] = {}
    content = ""
    finish_reason = None
    with client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "go"}],
        tools=[ADD_TOOL],
        stream=True,
    ) as stream:
        for chunk in stream:
            delta = chunk.choices[0].delta
            content += delta.content or ""
            for call in delta.tool_calls or []:
                assembled = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                if call.id:
                    assembled["id"] = call.id
                if call.function and call.function.name:
                    assembled["name"] = call.function.name
                if call.function and call.function.arguments:
                    assembled["arguments"] += call.function.arguments
            finish_reason = chunk.choices[0].finish_reason or finish_reason

    assert content == "Let me add."
    assert finish_reason == "tool_calls"
    assert [calls[i]["id"] for i in sorted(calls)] == ["call_1", "call_2"]
    assert [calls[i]["name"] for i in sorted(calls)] == ["add", "lookup"]
    assert [json.loads(calls[i]["arguments"]) for i in sorted(calls)] == [
        {"a": 1, "b": 2},
        {"query": "weather in Zürich"},
    ]


def test_requests_are_recorded_with_the_messages_and_tools_the_client_sent(
    model: ScriptedModel, client: openai.OpenAI
) -> None:
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 2}, id="call_a"),)),
        Reply(content="3"),
    )

    first = client.chat.completions.create(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "You add numbers."},
            {"role": "user", "content": "1+2?"},
        ],
        tools=[ADD_TOOL],
    )
    assert first.choices[0].message.tool_calls is not None
    second = client.chat.completions.create(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "You add numbers."},
            {"role": "user", "content": "1+2?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "3"},
        ],
        tools=[ADD_TOOL],
    )

    assert second.choices[0].message.content == "3"
    assert len(model.requests) == 2
    sent = model.requests[0]
    assert sent["model"] == "gpt-test"
    assert sent["messages"] == [
        {"role": "system", "content": "You add numbers."},
        {"role": "user", "content": "1+2?"},
    ]
    assert sent["tools"] == [ADD_TOOL]
    assert model.requests[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_a",
        "content": "3",
    }
    assert model.pending == 0


def test_status_500_reply_raises_internal_server_error(
    model: ScriptedModel, client: openai.OpenAI
) -> None:
    model.add(Reply(status=500, content="the model is down"), Reply(content="back up"))

    with pytest.raises(openai.InternalServerError) as raised:
        ask(client)

    assert raised.value.status_code == 500
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["message"] == "the model is down"
    assert raised.value.body["type"] == "server_error"
    assert ask(client).choices[0].message.content == "back up"


def test_status_429_reply_raises_rate_limit_error(
    model: ScriptedModel, client: openai.OpenAI
) -> None:
    model.add(Reply(status=429, content="slow down"))

    with pytest.raises(openai.RateLimitError) as raised:
        ask(client)

    assert raised.value.status_code == 429


def test_exhausted_script_answers_500(model: ScriptedModel, client: openai.OpenAI) -> None:
    model.add(Reply(content="only one"))
    assert ask(client).choices[0].message.content == "only one"

    with pytest.raises(openai.InternalServerError, match="script exhausted"):
        ask(client)

    assert len(model.requests) == 2


def test_default_reply_answers_once_the_queue_is_empty() -> None:
    with (
        ScriptedModel([Reply(content="first")], default=Reply(content="again")) as model,
        openai.OpenAI(base_url=model.base_url, api_key="test", max_retries=0) as client,
    ):
        answers = [ask(client).choices[0].message.content for _ in range(3)]
        model.add(Reply(content="queued later"))
        answers.append(ask(client).choices[0].message.content)

    assert answers == ["first", "again", "again", "queued later"]


def test_responder_computes_replies_from_the_request(
    model: ScriptedModel, client: openai.OpenAI
) -> None:
    def echo(request: dict[str, Any]) -> Reply:
        last = request["messages"][-1]
        return Reply(content=f"{last['role']} said: {last['content']}")

    model.add(Reply(content="scripted first"))
    model.reply_with(echo)

    answers = [ask(client, text).choices[0].message.content for text in ("a", "b", "c")]

    assert answers == ["scripted first", "user said: b", "user said: c"]


def test_responder_that_raises_answers_500(model: ScriptedModel, client: openai.OpenAI) -> None:
    def broken(request: dict[str, Any]) -> Reply:
        raise KeyError("nope")

    model.reply_with(broken)

    with pytest.raises(openai.InternalServerError, match="responder failed"):
        ask(client)


def test_models_endpoint_lists_the_scripted_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["scripted"]


def test_unknown_path_answers_404_json(model: ScriptedModel) -> None:
    host, port = model.base_url.removeprefix("http://").removesuffix("/v1").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/v1/nothing-here")
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()

    assert response.status == 404
    assert response.getheader("Content-Type") == "application/json"
    assert body["error"]["code"] == "not_found"


def test_delayed_reply_is_interrupted_by_stop() -> None:
    outcome: list[BaseException | str | None] = []
    model = ScriptedModel([Reply(content="too late", delay_seconds=60)])
    model.start()
    client = openai.OpenAI(base_url=model.base_url, api_key="test", max_retries=0)

    def call() -> None:
        try:
            outcome.append(ask(client).choices[0].message.content)
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    try:
        caller.start()
        deadline = time.monotonic() + 10
        while not model.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert model.requests, "the request never reached the scripted model"

        started = time.monotonic()
        model.stop()
        stopped_in = time.monotonic() - started
        caller.join(timeout=10)
    finally:
        model.stop()
        caller.join(timeout=10)
        client.close()

    assert stopped_in < 5
    assert not caller.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], openai.APIConnectionError)


def test_client_that_gives_up_during_a_delay_leaves_the_server_serving(
    model: ScriptedModel,
) -> None:
    model.add(Reply(content="too late", delay_seconds=30), Reply(content="on time"))
    threads_before = threading.active_count()
    with (
        openai.OpenAI(base_url=model.base_url, api_key="test", max_retries=0, timeout=0.5) as slow,
        pytest.raises(openai.APITimeoutError),
    ):
        ask(slow)

    # The request thread notices the hang-up instead of sleeping out the 30 s.
    deadline = time.monotonic() + 10
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == threads_before

    with openai.OpenAI(base_url=model.base_url, api_key="test", max_retries=0) as client:
        assert ask(client).choices[0].message.content == "on time"


def test_no_thread_is_left_after_stop() -> None:
    before = threading.active_count()
    model = ScriptedModel(default=Reply(content="hi there, streaming", tool_calls=()))
    model.start()
    with openai.OpenAI(base_url=model.base_url, api_key="test", max_retries=0) as client:
        for _ in range(3):
            assert ask(client).choices[0].message.content == "hi there, streaming"
        with client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as stream:
            assert len(list(stream)) > 3
    assert threading.active_count() > before

    model.stop()
    model.stop()

    assert threading.active_count() == before


def test_base_url_needs_a_running_model() -> None:
    model = ScriptedModel()
    with pytest.raises(RuntimeError, match="not running"):
        _ = model.base_url
    with model:
        assert model.base_url.startswith("http://127.0.0.1:")
        assert model.base_url.endswith("/v1")
    with pytest.raises(RuntimeError, match="not running"):
        _ = model.base_url
