"""`stigmer describe`: each kind laid out with what hangs off it, on both stores.

One scenario per store, built once for the module (a server on the embedded
engine with the scripted model, the real MCP test server as the agent's tool):
an agent with a second instance and an environment holding a secret, one
session with two executions, the first COMPLETED after an `add` tool call, the
second FAILED by a model error. Every test only reads it, through the real
`stigmer` command.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.resources.execution_events import COMPLETED, FAILED
from stigmer.testing.cli import Cli
from stigmer.testing.postgres import TemporaryPostgres
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import stdio_tools_agent
from tests.backends import STORE_BACKENDS, engine_options
from tests.waiting import wait_for_end

SECRET_VALUE = "sk-do-not-print-4711"
RUNTIME_SECRET = "rt-never-shown-0815"
RESOURCES = f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Environment
metadata: {{name: Calc Secrets, labels: {{team: numbers}}}}
spec:
  description: Credentials for the calculator
  data:
    API_KEY: {{value: {SECRET_VALUE}, is_secret: true, description: the calculator key}}
    REGION: {{value: eu-west-1}}
---
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {{name: Shared Calc}}
spec:
  description: The test calculator, shared
  stdio:
    command: {sys.executable}
    args: ["-m", "stigmer.testing.mcp_server"]
  default_enabled_tools: [add]
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Referrer}}
spec:
  instructions: You use the shared calculator for every sum.
  mcp_servers: [{{ref: shared-calc, enabled_tools: [add]}}]
"""
INSTANCE = """\
apiVersion: agentic.stigmer.ai/v1
kind: AgentInstance
metadata: {name: Calculator Prod}
spec:
  agent_ref: calculator
  environment_refs: [calc-secrets]
"""


@dataclass(frozen=True)
class Scenario:
    address: str
    agent_id: str
    instance_id: str
    session_id: str
    completed: execution_pb2.AgentExecution
    failed: execution_pb2.AgentExecution


def _build(client: Client, model: ScriptedModel) -> Scenario:
    client.apply(stdio_tools_agent() + "---\n" + RESOURCES)
    client.apply(INSTANCE)
    model.add(
        Reply(
            tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}),), input_tokens=30, output_tokens=4
        ),
        Reply(content="2 + 3 = 5", input_tokens=41, output_tokens=9),
    )
    started = client.run("calculator", "What is 2 + 3?", secrets={"API_TOKEN": RUNTIME_SECRET})
    completed = wait_for_end(client, started.metadata.id)
    assert completed.status.phase == COMPLETED, completed.status.error
    model.add(Reply(status=500, content="the GPU caught fire"))
    second = client.run(None, "And 4 + 4?", session=completed.status.session_id)
    failed = wait_for_end(client, second.metadata.id)
    assert failed.status.phase == FAILED
    return Scenario(
        client.address,
        completed.status.agent_id,
        completed.status.agent_instance_id,
        completed.status.session_id,
        completed,
        failed,
    )


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    database = ""
    if request.param == "postgres":
        postgres: TemporaryPostgres = request.getfixturevalue("postgres_server")
        database, store_url = postgres.new_database()
    else:
        store_url = str(tmp_path_factory.mktemp("describe") / "stigmer.db")
    try:
        with (
            ScriptedModel() as model,
            ServerThread(store_url, engine=engine_options(model.base_url)) as server,
            Client(server.address) as client,
        ):
            yield _build(client, model)
    finally:
        if database:
            postgres.drop_database(database, wait=False)


@pytest.fixture
def describe_cli(scenario: Scenario, tmp_path: Path) -> Cli:
    return Cli.isolated(tmp_path, {"SERVER": scenario.address}, cwd=tmp_path)


def _line_with(output: str, *parts: str) -> str:
    """The one line that holds every part."""
    found = [line for line in output.splitlines() if all(part in line for part in parts)]
    assert len(found) == 1, f"{len(found)} lines hold {parts} in:\n{output}"
    return found[0]


def test_describe_agent_shows_its_spec_instances_sessions_and_last_executions(
    describe_cli: Cli, scenario: Scenario
) -> None:
    result = describe_cli("describe", "agent", "calculator")

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert re.search(r"^Name: +Calculator$", out, re.M)
    assert re.search(rf"^Id: +{scenario.agent_id}$", out, re.M)
    assert re.search(r"^Org: +local$", out, re.M)
    assert re.search(r"^Created: +\d+\w+ ago \(\d{4}-\d\d-\d\d ", out, re.M)
    assert "You add numbers with the add tool" in out
    assert "calc: stdio: " in out and "-m stigmer.testing.mcp_server" in out
    assert re.search(rf"^Default Instance: +{scenario.instance_id}$", out, re.M)
    assert "Instances (2)" in out
    _line_with(out, "calculator-default", scenario.instance_id)
    _line_with(out, "calculator-prod", "calc-secrets")
    assert "Sessions (1)" in out
    _line_with(out, scenario.session_id, "calculator-default")
    assert "Executions (2)" in out
    completed = _line_with(out, scenario.completed.metadata.id)
    assert "COMPLETED" in completed
    assert "71/13" in completed  # both model calls' tokens
    assert "What is 2 + 3?" in completed
    failed = _line_with(out, scenario.failed.metadata.id)
    assert "FAILED" in failed
    assert "And 4 + 4?" in failed


def test_describe_execution_shows_conversation_tool_call_timings_and_usage(
    describe_cli: Cli, scenario: Scenario
) -> None:
    result = describe_cli("describe", "execution", scenario.completed.metadata.id)

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert re.search(r"^Phase: +COMPLETED$", out, re.M)
    assert re.search(rf"^Agent: +calculator \({scenario.agent_id}\)$", out, re.M)
    assert re.search(rf"^Session: +\S+ \({scenario.session_id}\)$", out, re.M)
    assert re.search(r"^Duration: +\d+(ms|\.\ds)$", out, re.M)
    assert re.search(r"^Usage: +71 input / 13 output tokens$", out, re.M)
    assert re.search(r"^Model: +<server default>$", out, re.M)
    assert "Conversation (4 messages)" in out
    _line_with(out, "HUMAN", "What is 2 + 3?")
    _line_with(out, "TOOL", "add: 5")
    _line_with(out, "AI", "2 + 3 = 5")
    call = _line_with(out, "add", "calc", "COMPLETED")
    # started, completed (time of day) and the duration between them
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} +\d\d:\d\d:\d\d\.\d{3} +\d+(ms|\.\ds) ", call)
    assert '{"a":2,"b":3}' in call
    assert re.search(r"^Events: +\d+$", out, re.M)
    assert re.search(r"^Error:\n  <none>$", out, re.M)


def test_describe_failed_execution_shows_its_error(describe_cli: Cli, scenario: Scenario) -> None:
    result = describe_cli("describe", "aex", scenario.failed.metadata.id)

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert re.search(r"^Phase: +FAILED$", out, re.M)
    error_block = out.split("\nError:\n", 1)[1]
    assert "the GPU caught fire" in error_block
    assert "500" in error_block
    assert "Tool Calls (0)" in out


def test_describe_session_and_instance_list_their_executions(
    describe_cli: Cli, scenario: Scenario
) -> None:
    session = describe_cli("describe", "session", scenario.session_id)
    instance = describe_cli("describe", "agentinstance", scenario.instance_id)
    other = describe_cli("describe", "ain", "calculator-prod")

    assert session.exit_code == 0, session.stderr
    assert re.search(
        rf"^Instance: +calculator-default \({scenario.instance_id}\)$", session.stdout, re.M
    )
    assert "Executions (2)" in session.stdout
    _line_with(session.stdout, scenario.completed.metadata.id, "COMPLETED")
    _line_with(session.stdout, scenario.failed.metadata.id, "FAILED")
    assert instance.exit_code == 0, instance.stderr
    assert re.search(rf"^Agent: +calculator \({scenario.agent_id}\)$", instance.stdout, re.M)
    _line_with(instance.stdout, scenario.session_id)
    _line_with(instance.stdout, scenario.failed.metadata.id, "FAILED")
    assert other.exit_code == 0, other.stderr
    assert re.search(r"^Environments: +calc-secrets$", other.stdout, re.M)
    assert "Sessions (0)" in other.stdout
    assert "Executions (0)" in other.stdout


def test_describe_never_shows_a_secret_value(describe_cli: Cli, scenario: Scenario) -> None:
    environment = describe_cli("describe", "environment", "calc-secrets")
    execution = describe_cli("describe", "execution", scenario.completed.metadata.id)

    assert environment.exit_code == 0, environment.stderr
    assert SECRET_VALUE not in environment.stdout
    api_key = _line_with(environment.stdout, "API_KEY")
    assert "***" in api_key and "yes" in api_key and "the calculator key" in api_key
    assert "eu-west-1" in _line_with(environment.stdout, "REGION")
    assert re.search(r"^Labels: +team=numbers$", environment.stdout, re.M)
    assert re.search(r"^Used By Instances: +calculator-prod$", environment.stdout, re.M)
    assert execution.exit_code == 0, execution.stderr
    assert RUNTIME_SECRET not in execution.stdout
    assert re.search(r"^Runtime Env: +API_TOKEN=\*\*\*$", execution.stdout, re.M)


def test_describe_mcp_server_shows_its_transport_and_the_agents_using_it(
    describe_cli: Cli,
) -> None:
    result = describe_cli("describe", "mcp", "shared-calc")

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert re.search(r"^Transport: +stdio: .*-m stigmer\.testing\.mcp_server$", out, re.M)
    assert re.search(rf"^  Command: +{re.escape(sys.executable)}$", out, re.M)
    assert re.search(r"^Default Tools: +add$", out, re.M)
    assert re.search(r"^Used By Agents: +referrer \(add\)$", out, re.M)


def test_describe_of_an_unknown_kind_is_exit_2_and_of_an_unknown_name_exit_1(cli: Cli) -> None:
    # About the command, not the store: on the CLI suite's own (SQLite) server.
    unknown_kind = cli("describe", "agentz", "calculator")
    unknown_name = cli("describe", "agent", "nobody")
    unknown_execution = cli("describe", "execution", "aex-01jzzzzzzzzzzzzzzzzzzzzzzz")

    assert unknown_kind.exit_code == 2
    assert "unknown kind 'agentz'" in unknown_kind.stderr
    assert unknown_name.exit_code == 1
    assert "not found" in unknown_name.stderr
    assert unknown_execution.exit_code == 1
    assert "not found" in unknown_execution.stderr
