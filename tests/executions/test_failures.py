"""Everything that can go wrong in a run is a clear error or a FAILED
execution with a clear message — never a crash, never a stuck PENDING."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.local_ports import free_local_port
from stigmer.resources.execution_events import COMPLETED, FAILED
from stigmer.testing.cli import Cli
from stigmer.testing.postgres import TemporaryPostgres
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.backends import engine_options
from tests.waiting import wait_for_end, wait_until


def system_messages(execution: execution_pb2.AgentExecution) -> list[str]:
    return [
        m.content for m in execution.status.messages if m.type == execution_pb2.MESSAGE_TYPE_SYSTEM
    ]


def test_unreachable_model_fails_the_execution_with_a_clear_message(store_url: str) -> None:
    options = engine_options(f"http://127.0.0.1:{free_local_port()}/v1", workers=1)
    with ServerThread(store_url, engine=options) as server, Client(server.address) as client:
        client.apply(PLAIN_AGENT)
        final = wait_for_end(client, client.run("greeter", "hi").metadata.id)
    assert final.status.phase == FAILED
    assert "unreachable" in final.status.error
    assert any("unreachable" in text for text in system_messages(final))


def test_model_http_500_fails_the_execution_naming_the_status(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(status=500, content="the GPU caught fire"))
    run = cli("run", "greeter", "hi")
    assert run.exit_code == 1
    assert "FAILED" in run.stdout
    assert "500" in run.stdout
    assert "the GPU caught fire" in run.stdout


def test_crashing_tool_is_a_failed_tool_call_and_the_model_carries_on(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("crash", {}),)),
        Reply(content="The tool crashed, sorry."),
    )
    final = wait_for_end(client, client.run("calculator", "crash it").metadata.id)
    assert final.status.phase == COMPLETED
    (call,) = final.status.tool_calls
    assert call.status == execution_pb2.TOOL_CALL_STATUS_FAILED
    assert call.error
    second_request = model.requests[1]["messages"]
    assert second_request[-1]["role"] == "tool"


def test_failing_tool_error_goes_back_to_the_model(client: Client, model: ScriptedModel) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("fail", {"message": "disk full"}),)),
        Reply(content="The tool failed: disk full."),
    )
    final = wait_for_end(client, client.run("calculator", "try").metadata.id)
    assert final.status.phase == COMPLETED
    assert "disk full" in final.status.tool_calls[0].error
    assert "disk full" in model.requests[1]["messages"][-1]["content"]


def test_mcp_server_that_will_not_start_fails_the_execution(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(
        """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: Broken Tools}
spec:
  instructions: Use the tools you are given.
  mcp_servers:
    - name: missing
      stdio: {command: /nonexistent/stigmer-tool-server}
"""
    )
    model.add(Reply(content="never asked"))
    final = wait_for_end(client, client.run("broken-tools", "hi").metadata.id)
    assert final.status.phase == FAILED
    assert "tool server" in final.status.error
    assert "/nonexistent/stigmer-tool-server" in final.status.error
    assert model.requests == []


def test_unresolved_placeholder_fails_naming_the_variable(
    client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent(env={"TOKEN": "${GITHUB_TOKEN}"}))
    final = wait_for_end(client, client.run("calculator", "hi").metadata.id)
    assert final.status.phase == FAILED
    assert "${GITHUB_TOKEN}" in final.status.error


def test_unknown_agent_and_empty_message_are_clear_cli_errors(cli: Cli, client: Client) -> None:
    unknown = cli("run", "nobody", "hi")
    assert unknown.exit_code == 1
    assert "Agent 'nobody' not found" in unknown.stderr
    client.apply(PLAIN_AGENT)
    empty = cli("run", "greeter", "   ")
    assert empty.exit_code == 2
    assert "spec.message" in empty.stderr
    assert client.list_executions() == []


def test_canary_secret_reaches_the_tool_and_nothing_else(
    cli: Cli, client: Client, model: ScriptedModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "canary-7f3a9c1e-secret"
    witness = tmp_path / "tool-saw.txt"
    client.apply(stdio_tools_agent(env={"STIGMER_TEST_CANARY_FILE": str(witness)}))
    model.add(
        Reply(tool_calls=(ToolCallStep("read_env", {"name": "CANARY"}),)),
        Reply(content="I read the variable."),
    )

    run = cli("run", "calculator", "read CANARY", "--secret", f"CANARY={canary}")

    assert run.exit_code == 0, run.stdout + run.stderr
    assert witness.read_text() == f"CANARY={canary}\n"
    execution = client.list_executions()[0]
    outputs = [
        run.stdout,
        run.stderr,
        cli("get", "execution", execution.metadata.id, "-o", "yaml").stdout,
        cli("get", "execution", execution.metadata.id, "-o", "json").stdout,
        cli("logs", execution.metadata.id).stdout,
        str(execution),
        str(list(client.subscribe(execution.metadata.id, after_sequence=1))),
        "\n".join(record.getMessage() for record in caplog.records),
    ]
    for output in outputs:
        assert canary not in output
    assert execution.spec.runtime_env["CANARY"].value == "***"
    assert execution.status.tool_calls[0].result == "***"


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_runs_go_on_after_the_database_dropped_every_connection(
    client: Client, model: ScriptedModel, store_url: str, postgres_server: TemporaryPostgres
) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="before"))
    assert wait_for_end(client, client.run("greeter", "one").metadata.id).status.phase == COMPLETED

    # Every connection of the server's pool dies (a database restart, a
    # failover) while the engine polls the store for work.
    database = store_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
    time.sleep(1)  # several of the engine's polls meet the dropped connections
    model.add(Reply(content="after"))
    # The store replaces the dead connections: no request fails.
    started = client.run("greeter", "two")

    final = wait_for_end(client, started.metadata.id)
    assert final.status.phase == COMPLETED, final.status.error
    assert final.status.messages[-1].content == "after"


def test_an_execution_the_stopping_server_interrupts_is_queued_again_not_cancelled(
    store_url: str, model: ScriptedModel
) -> None:
    options = engine_options(model.base_url, workers=1)
    model.add(Reply(content="never delivered", delay_seconds=60), Reply(content="Hello!"))
    with ServerThread(store_url, engine=options) as server, Client(server.address) as client:
        client.apply(PLAIN_AGENT)
        execution_id = client.run("greeter", "hi").metadata.id
        wait_until(lambda: len(model.requests) == 1, what="the first model call")
    # Nothing of it had happened (the model never answered): the next server runs it.
    with ServerThread(store_url, engine=options) as server, Client(server.address) as client:
        final = wait_for_end(client, execution_id)
    assert final.status.phase == COMPLETED, final.status.error
    assert final.status.messages[-1].content == "Hello!"
    assert len(model.requests) == 2
