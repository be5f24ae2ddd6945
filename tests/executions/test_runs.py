"""Running agents end to end: the scripted model over real HTTP, real MCP
tool servers, the real server and CLI."""

from __future__ import annotations

import json

import yaml

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.resources.execution_events import COMPLETED
from stigmer.testing.cli import Cli
from stigmer.testing.mcp_server import HttpMcpServer
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.waiting import wait_for_end


def test_run_streams_the_answer_and_the_execution_records_everything(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="Hello there, nice to meet you!", input_tokens=12, output_tokens=7))

    run = cli("run", "greeter", "hi")

    assert run.exit_code == 0, run.stderr
    assert "you: hi" in run.stdout
    assert "agent: Hello there, nice to meet you!" in run.stdout
    assert "COMPLETED" in run.stdout
    execution_id = run.stdout.split("COMPLETED (", 1)[1].split(",", 1)[0]
    shown = cli("get", "execution", execution_id, "-o", "yaml")
    execution = yaml.safe_load(shown.stdout)
    status = execution["status"]
    assert status["phase"] == "EXECUTION_PHASE_COMPLETED"
    assert [m["type"] for m in status["messages"]] == ["MESSAGE_TYPE_HUMAN", "MESSAGE_TYPE_AI"]
    assert status["messages"][1]["content"] == "Hello there, nice to meet you!"
    assert all(m["timestamp"] for m in status["messages"])
    assert status["started_at"] and status["completed_at"]
    assert status["usage"] == {"input_tokens": 12, "output_tokens": 7, "model_calls": 1}
    listed = cli("get", "executions", "--phase", "completed")
    assert execution_id in listed.stdout


def test_stdio_tool_call_is_recorded_and_its_result_reaches_the_model(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}),)),
        Reply(content="2 + 3 = 5"),
    )

    started = client.run("calculator", "What is 2 + 3?")
    final = wait_for_end(client, started.metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert call.name == "add"
    assert dict(call.args) == {"a": 2, "b": 3}
    assert call.result == "5"
    assert call.status == execution_pb2.TOOL_CALL_STATUS_COMPLETED
    assert call.started_at.seconds and call.completed_at.seconds
    tool_message = [m for m in final.status.messages if m.type == execution_pb2.MESSAGE_TYPE_TOOL]
    assert tool_message[0].tool_call_id == call.id
    second_request = model.requests[1]["messages"]
    assert {"role": "tool", "tool_call_id": call.id, "content": "5"}.items() <= second_request[
        -1
    ].items()
    assert final.status.messages[-1].content == "2 + 3 = 5"


def test_streamable_http_tool_call_is_recorded(client: Client, model: ScriptedModel) -> None:
    with HttpMcpServer() as tools:
        client.apply(
            f"""\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {{name: remote-calc}}
spec:
  http: {{url: "{tools.url}"}}
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Remote Calculator}}
spec:
  instructions: You add numbers with the add tool.
  mcp_servers: [{{ref: remote-calc, enabled_tools: [add]}}]
"""
        )
        model.add(Reply(tool_calls=(ToolCallStep("add", {"a": 20, "b": 22}),)), Reply(content="42"))
        final = wait_for_end(client, client.run("remote-calculator", "20+22?").metadata.id)
    assert final.status.phase == COMPLETED, final.status.error
    assert [c.result for c in final.status.tool_calls] == ["42"]
    offered = [tool["function"]["name"] for tool in model.requests[0]["tools"]]
    assert offered == ["add"]


def test_second_execution_in_a_session_sends_the_first_exchange_to_the_model(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="Hi Ada!"), Reply(content="Your name is Ada."))
    first = wait_for_end(client, client.run("greeter", "My name is Ada.").metadata.id)
    second = client.run(None, "What is my name?", session=first.status.session_id)
    final = wait_for_end(client, second.metadata.id)

    assert final.status.phase == COMPLETED
    assert final.status.session_id == first.status.session_id
    sent = [(m["role"], m.get("content")) for m in model.requests[1]["messages"]]
    assert sent[1:] == [
        ("user", "My name is Ada."),
        ("assistant", "Hi Ada!"),
        ("user", "What is my name?"),
    ]
    assert sent[0][0] == "system"


def test_run_json_output_and_no_follow(cli: Cli, client: Client, model: ScriptedModel) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="Hello."), Reply(content="Hello again."))
    as_json = cli("run", "greeter", "hi", "-o", "json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["status"]["phase"] == "EXECUTION_PHASE_COMPLETED"
    detached = cli("run", "greeter", "hi again", "--no-follow")
    assert detached.exit_code == 0
    execution_id = detached.stdout.strip()
    assert wait_for_end(client, execution_id).status.phase == COMPLETED
    logs = cli("logs", execution_id)
    assert "you: hi again" in logs.stdout and "agent: Hello again." in logs.stdout


def test_idempotency_key_returns_the_original_or_refuses_another_request(
    client: Client, model: ScriptedModel
) -> None:
    from stigmer.errors import AlreadyExists

    client.apply(PLAIN_AGENT)
    model.add(Reply(content="Hello."))
    first = client.run("greeter", "hi", idempotency_key="order-42")
    again = client.run("greeter", "hi", idempotency_key="order-42")
    assert again.metadata.id == first.metadata.id
    try:
        client.run("greeter", "something else", idempotency_key="order-42")
    except AlreadyExists as error:
        assert error.existing_id == first.metadata.id
    else:
        raise AssertionError("a different request with the same key must be refused")
    wait_for_end(client, first.metadata.id)
    assert len(client.list_executions()) == 1


def test_python_sdk_watch_sees_the_answer_grow(client: Client, model: ScriptedModel) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="one two three four five six seven eight nine ten"))
    execution = client.run("greeter", "count")
    deltas = [
        update.event.message_delta.text
        for _, update in client.watch(execution.metadata.id)
        if update.event.WhichOneof("change") == "message_delta"
    ]
    assert "".join(deltas) == "one two three four five six seven eight nine ten"
    final = client.get_execution(execution.metadata.id)
    assert final.status.messages[-1].content == "".join(deltas)
