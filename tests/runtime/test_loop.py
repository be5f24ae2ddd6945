"""The agent loop against the scripted model over real HTTP and the real MCP test server."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from stigmer.local_ports import free_local_port
from stigmer.runtime.contract import (
    HistoryMessage,
    HistoryToolCall,
    HttpServer,
    ModelError,
    ModelSettings,
    RunOutcome,
    RunRequest,
    StdioServer,
    ToolServer,
    ToolServerError,
)
from stigmer.runtime.loop import run_agent
from stigmer.testing.mcp_server import HttpMcpServer
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from tests.processes import child_pids, linux_only
from tests.runtime.anthropic_stream import CannedAnthropic, text_reply, tool_use_reply
from tests.runtime.servers import stdio_tools
from tests.runtime.sinks import CollectingSink
from tests.waiting import wait_until, wait_until_async

INSTRUCTIONS = "You are a careful calculator."


def request_for(
    base_url: str,
    message: str = "What is 2 + 3?",
    *,
    tool_servers: tuple[ToolServer, ...] = (),
    history: tuple[HistoryMessage, ...] = (),
    max_steps: int = 16,
) -> RunRequest:
    return RunRequest(
        instructions=INSTRUCTIONS,
        history=history,
        message=message,
        model=ModelSettings(provider="openai", model="scripted", base_url=base_url),
        tool_servers=tool_servers,
        max_steps=max_steps,
    )


def run(request: RunRequest) -> tuple[RunOutcome, CollectingSink]:
    sink = CollectingSink()

    async def scenario() -> RunOutcome:
        outcome = await run_agent(request, sink)
        # Nothing of the run (tool server tasks included) outlives it.
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return outcome

    return asyncio.run(scenario()), sink


def tool_names(body: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in body.get("tools", [])]


def test_plain_answer_streams_deltas_that_add_up_to_the_final_answer_and_reports_usage() -> None:
    answer = "Two plus three is five, as always."
    with ScriptedModel([Reply(content=answer, input_tokens=21, output_tokens=8)]) as model:
        outcome, sink = run(request_for(model.base_url))

    assert outcome == RunOutcome(final_answer=answer, steps=1)
    assert len(sink.deltas) > 1
    assert "".join(sink.deltas) == answer
    assert sink.kinds == ["ai_message_started", "ai_message_finished", "usage"]
    assert sink.messages == [(answer, ())]
    assert sink.usages == [(21, 8)]
    body = model.requests[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "tools" not in body
    assert body["messages"] == [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "What is 2 + 3?"},
    ]


def assert_add_round_trip(model: ScriptedModel, outcome: RunOutcome, sink: CollectingSink) -> None:
    assert outcome == RunOutcome(final_answer="2 + 3 = 5", steps=2)
    assert sink.kinds == [
        "ai_message_started",
        "ai_message_finished",
        "usage",
        "tool_call_started",
        "tool_call_finished",
        "ai_message_started",
        "ai_message_finished",
        "usage",
    ]
    [call] = sink.started_calls
    assert (call.id, call.name, call.server, dict(call.arguments)) == (
        "call_add",
        "add",
        "tools",
        {"a": 2, "b": 3},
    )
    assert [(r.call_id, r.result, r.is_error) for r in sink.results] == [("call_add", "5", False)]
    assert tool_names(model.requests[0]) == [
        "add",
        "echo",
        "repeat",
        "read_env",
        "pid",
        "fail",
        "crash",
        "sleep",
        "discard",
    ]
    assert model.requests[1]["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_add",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_add", "content": "5"},
    ]


ADD_SCRIPT = (
    Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}, id="call_add"),)),
    Reply(content="2 + 3 = 5"),
)


def test_tool_call_round_trip_over_stdio_feeds_the_result_back_to_the_model() -> None:
    with ScriptedModel(ADD_SCRIPT) as model:
        outcome, sink = run(request_for(model.base_url, tool_servers=(stdio_tools(),)))
    assert_add_round_trip(model, outcome, sink)


def test_tool_call_round_trip_over_http_feeds_the_result_back_to_the_model() -> None:
    with HttpMcpServer() as server, ScriptedModel(ADD_SCRIPT) as model:
        tools = ToolServer(name="tools", transport=HttpServer(url=server.url))
        outcome, sink = run(request_for(model.base_url, tool_servers=(tools,)))
    assert_add_round_trip(model, outcome, sink)


def test_history_reaches_the_model_in_order_before_the_new_message() -> None:
    history = (
        HistoryMessage(role="user", content="What is 2 + 3?"),
        HistoryMessage(
            role="assistant",
            content="",
            tool_calls=(HistoryToolCall(id="call_1", name="add", arguments={"a": 2, "b": 3}),),
        ),
        HistoryMessage(role="tool", content="5", tool_call_id="call_1"),
        HistoryMessage(role="assistant", content="It is 5."),
    )
    with ScriptedModel([Reply(content="It is 8.")]) as model:
        outcome, _ = run(request_for(model.base_url, "And 4 + 4?", history=history))

    assert outcome.final_answer == "It is 8."
    assert model.requests[0]["messages"] == [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "What is 2 + 3?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
        {"role": "assistant", "content": "It is 5."},
        {"role": "user", "content": "And 4 + 4?"},
    ]


def test_enabled_tools_limit_what_the_model_is_offered() -> None:
    with ScriptedModel([Reply(content="ok")]) as model:
        run(request_for(model.base_url, tool_servers=(stdio_tools(enabled=("echo", "add")),)))
    assert tool_names(model.requests[0]) == ["add", "echo"]
    [add] = [tool for tool in model.requests[0]["tools"] if tool["function"]["name"] == "add"]
    assert add["function"]["parameters"]["required"] == ["a", "b"]
    assert add["function"]["description"] == "Return the sum of a and b."


def test_an_enabled_tool_the_server_lacks_is_a_tool_server_error_naming_it() -> None:
    servers = (stdio_tools(enabled=("add", "multiply")),)
    with (
        ScriptedModel([Reply(content="never")]) as model,
        pytest.raises(ToolServerError, match=r"'tools' has no tool 'multiply'"),
    ):
        run(request_for(model.base_url, tool_servers=servers))
    assert model.requests == []


def test_a_failing_tool_is_an_error_result_the_model_reads_and_the_run_completes() -> None:
    script = [
        Reply(tool_calls=(ToolCallStep("fail", {"message": "disk is full"}, id="call_f"),)),
        Reply(content="The tool failed: the disk is full."),
    ]
    with ScriptedModel(script) as model:
        outcome, sink = run(request_for(model.base_url, tool_servers=(stdio_tools(),)))

    assert outcome.final_answer == "The tool failed: the disk is full."
    [result] = sink.results
    assert result.is_error
    assert "disk is full" in result.result
    assert model.requests[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_f",
        "content": result.result,
    }


def test_a_crashing_tool_server_is_an_error_result_and_later_calls_say_it_stopped() -> None:
    script = [
        Reply(tool_calls=(ToolCallStep("crash", {}, id="call_crash"),)),
        Reply(tool_calls=(ToolCallStep("add", {"a": 1, "b": 1}, id="call_after"),)),
        Reply(content="The tools are gone."),
    ]
    with ScriptedModel(script) as model:
        started = time.monotonic()
        outcome, sink = run(request_for(model.base_url, tool_servers=(stdio_tools(),)))

    assert time.monotonic() - started < 20
    assert outcome == RunOutcome(final_answer="The tools are gone.", steps=3)
    crashed, after = sink.results
    assert crashed.is_error
    assert "tool server 'tools' stopped" in crashed.result
    assert after.is_error
    assert "tool server 'tools' stopped" in after.result
    assert model.requests[1]["messages"][-1]["content"] == crashed.result


def test_a_tool_the_model_invents_is_an_error_result_and_the_loop_goes_on() -> None:
    script = [
        Reply(tool_calls=(ToolCallStep("multiply", {"a": 2, "b": 3}, id="call_x"),)),
        Reply(content="I cannot multiply."),
    ]
    with ScriptedModel(script) as model:
        outcome, sink = run(request_for(model.base_url, tool_servers=(stdio_tools(),)))

    assert outcome.final_answer == "I cannot multiply."
    [call] = sink.started_calls
    assert (call.name, call.server) == ("multiply", "")
    [result] = sink.results
    assert result.is_error
    assert "unknown tool 'multiply'" in result.result
    assert "add, echo" in result.result
    assert model.requests[1]["messages"][-1]["tool_call_id"] == "call_x"


def test_model_http_500_is_a_model_error_with_the_status_and_message() -> None:
    with (
        ScriptedModel([Reply(status=500, content="the model is overloaded")]) as model,
        pytest.raises(ModelError, match="model returned HTTP 500: the model is overloaded"),
    ):
        run(request_for(model.base_url))


def test_an_unreachable_model_endpoint_is_a_model_error_saying_so() -> None:
    base_url = f"http://127.0.0.1:{free_local_port()}/v1"
    with pytest.raises(ModelError) as raised:
        run(request_for(base_url))
    assert str(raised.value) == f"model endpoint {base_url} unreachable: connection refused"


def test_a_tool_server_that_will_not_start_is_a_tool_server_error_naming_it() -> None:
    missing = ToolServer(name="ghost", transport=StdioServer(command="stigmer-no-such-command"))
    with (
        ScriptedModel([Reply(content="never")]) as model,
        pytest.raises(ToolServerError) as raised,
    ):
        run(request_for(model.base_url, tool_servers=(missing,)))
    assert str(raised.value) == (
        "tool server 'ghost' (command 'stigmer-no-such-command') could not start: command not found"
    )
    assert model.requests == []


def test_the_step_limit_ends_the_run_with_the_last_content() -> None:
    looping = Reply(content="Trying again.", tool_calls=(ToolCallStep("echo", {"text": "x"}),))
    with ScriptedModel(default=looping) as model:
        outcome, sink = run(request_for(model.base_url, tool_servers=(stdio_tools(),), max_steps=3))

    assert outcome == RunOutcome(final_answer="Trying again.", steps=3, is_step_limit_reached=True)
    assert len(model.requests) == 3
    assert [r.result for r in sink.results] == ["x", "x", "x"]


@linux_only
def test_cancelling_during_a_slow_model_reply_stops_promptly_and_leaves_no_child_process() -> None:
    before = child_pids()
    sink = CollectingSink()

    async def scenario(model: ScriptedModel) -> float:
        request = request_for(model.base_url, tool_servers=(stdio_tools(),))
        task = asyncio.create_task(run_agent(request, sink))
        await wait_until_async(lambda: len(model.requests) == 1, what="the model call")
        assert len(child_pids() - before) == 1
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - cancelled_at

    with ScriptedModel([Reply(content="too late", delay_seconds=30)]) as model:
        elapsed = asyncio.run(scenario(model))

    # Not a speed measure: the reply would take 30 s, so a cancel that waited
    # for it would take that long; a prompt one is far below, even on a busy machine.
    assert elapsed < 10
    assert sink.kinds == ["ai_message_started"]
    wait_until(lambda: not child_pids() - before, what="the tool server to exit", within=5)


def test_a_stdio_tool_sees_its_resolved_env_and_not_the_parent_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STIGMER_TEST_PARENT_ONLY", "leaked")
    script = [
        Reply(
            tool_calls=(
                ToolCallStep("read_env", {"name": "STIGMER_TEST_SECRET"}),
                ToolCallStep("read_env", {"name": "STIGMER_TEST_PARENT_ONLY"}),
            )
        ),
        Reply(content="done"),
    ]
    tools = stdio_tools(env={"STIGMER_TEST_SECRET": "s3cret-value"})
    with ScriptedModel(script) as model:
        outcome, sink = run(request_for(model.base_url, tool_servers=(tools,)))

    assert outcome.final_answer == "done"
    assert [(r.result, r.is_error) for r in sink.results] == [
        ("s3cret-value", False),
        ("<unset>", False),
    ]


class FailingSink(CollectingSink):
    """A sink whose store is broken: it cannot record streamed text."""

    async def ai_content_delta(self, text: str) -> None:
        raise OSError("disk full")


def test_an_error_of_the_sink_aborts_the_run_as_itself_not_as_a_model_error() -> None:
    with ScriptedModel([Reply(content="hello there")]) as model:
        request = request_for(model.base_url)
        with pytest.raises(OSError, match="disk full") as raised:
            asyncio.run(run_agent(request, FailingSink()))
    assert not isinstance(raised.value, ModelError)


def test_max_steps_below_one_is_rejected() -> None:
    request = request_for("http://127.0.0.1:9/v1", max_steps=0)
    with pytest.raises(ValueError, match="max_steps must be at least 1"):
        asyncio.run(run_agent(request, CollectingSink()))


@linux_only
def test_cancelling_during_a_tool_call_stops_promptly_and_leaves_no_child_process() -> None:
    before = child_pids()
    sink = CollectingSink()

    async def scenario(model: ScriptedModel) -> float:
        request = request_for(model.base_url, tool_servers=(stdio_tools(),))
        task = asyncio.create_task(run_agent(request, sink))
        await wait_until_async(lambda: bool(sink.started_calls), what="the tool call to start")
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - cancelled_at

    script = [Reply(tool_calls=(ToolCallStep("sleep", {"seconds": 60}),))]
    with ScriptedModel(script) as model:
        elapsed = asyncio.run(scenario(model))

    # Not a speed measure: the tool would take 60 s, so a cancel that waited
    # for it would take that long; a prompt one is far below, even on a busy machine.
    assert elapsed < 10
    assert sink.kinds[-1] == "tool_call_started"
    assert sink.results == []
    wait_until(lambda: not child_pids() - before, what="the tool server to exit", within=5)


@linux_only
def test_cancelling_while_tool_servers_start_leaves_no_child_process() -> None:
    before = child_pids()

    async def scenario(model: ScriptedModel) -> None:
        request = request_for(model.base_url, tool_servers=(stdio_tools("a"), stdio_tools("b")))
        task = asyncio.create_task(run_agent(request, CollectingSink()))
        await wait_until_async(
            lambda: len(child_pids() - before) == 2, what="both tool servers to start", within=10
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}

    with ScriptedModel([Reply(content="never")]) as model:
        asyncio.run(scenario(model))
        assert model.requests == []
    wait_until(lambda: not child_pids() - before, what="the tool server to exit", within=5)


def test_an_anthropic_model_drives_a_tool_round_trip_over_stdio() -> None:
    replies = [
        tool_use_reply("Adding.", "toolu_add", "add", '{"a": 2, "b": 3}'),
        text_reply("2 + 3 ", "= 5"),
    ]
    with CannedAnthropic(replies) as canned:
        model = ModelSettings(
            provider="anthropic", model="claude", base_url=canned.base_url, api_key="k"
        )
        request = replace(request_for("", tool_servers=(stdio_tools(),)), model=model)
        outcome, sink = run(request)

    assert outcome == RunOutcome(final_answer="2 + 3 = 5", steps=2)
    assert sink.deltas == ["Adding.", "2 + 3 ", "= 5"]
    assert sink.usages == [(25, 9), (25, 15)]
    assert [(r.call_id, r.result, r.is_error) for r in sink.results] == [("toolu_add", "5", False)]
    first, second = canned.requests
    assert first["system"] == INSTRUCTIONS
    assert [tool["name"] for tool in first["tools"]] == [
        "add",
        "echo",
        "repeat",
        "read_env",
        "pid",
        "fail",
        "crash",
        "sleep",
        "discard",
    ]
    assert second["messages"][-2:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Adding."},
                {"type": "tool_use", "id": "toolu_add", "name": "add", "input": {"a": 2, "b": 3}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_add",
                    "content": "5",
                    "is_error": False,
                }
            ],
        },
    ]
