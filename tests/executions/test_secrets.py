"""Secret values stay secret in everything an execution shows: streamed text
split across deltas, a tool's arguments and results, a model error quoting a
tool result, a tool server's failed command line, and the server's log.

Each secret comes from another source: an Environment, the agent's env_spec,
an McpServer's env_spec and `stigmer run --secret`. Every test runs on both
engines over SQLite (the stores' part in masking is nil: it stores what the
engine recorded).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine import recording
from stigmer.resources.execution_events import COMPLETED, FAILED
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from tests.waiting import wait_for_end

pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

ENV_SECRET = "env-secret-4f1d9b"
AGENT_SECRET = "agent-secret-77a0c3e"
MCP_SECRET = "mcp-secret-b93e1x"
RUN_SECRET = "run-secret-0c55aa2"
EVERY_SECRET = (ENV_SECRET, AGENT_SECRET, MCP_SECRET, RUN_SECRET)

MANIFESTS = f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Environment
metadata: {{name: vault}}
spec:
  data:
    ENV_TOKEN: {{value: {ENV_SECRET}, is_secret: true}}
---
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {{name: tools}}
spec:
  stdio:
    command: {sys.executable}
    args: ["-m", "stigmer.testing.mcp_server"]
  env_spec:
    data:
      MCP_TOKEN: {{value: {MCP_SECRET}, is_secret: true}}
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Keeper}}
spec:
  instructions: You read tokens with your tools and keep them to yourself.
  mcp_servers:
    - ref: tools
  env_spec:
    data:
      AGENT_TOKEN: {{value: {AGENT_SECRET}, is_secret: true}}
---
apiVersion: agentic.stigmer.ai/v1
kind: AgentInstance
metadata: {{name: keeper-vault}}
spec:
  agent_ref: keeper
  environment_refs: [vault]
"""


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    # Three characters a delta: every secret here spans several of them.
    with ScriptedModel(chunk_size=3) as scripted:
        yield scripted


def _shown_everywhere(client: Client, cli: Cli, execution_id: str) -> str:
    """Every view of the execution: the API (get, list, subscribe from the
    start and replayed from the first sequence) and the CLI."""
    views = [
        str(client.get_execution(execution_id)),
        "".join(str(e) for e in client.list_executions()),
        "".join(str(u) for u in client.subscribe(execution_id)),
        "".join(str(u) for u in client.subscribe(execution_id, after_sequence=1)),
    ]
    for args in (
        ("logs", execution_id),
        ("get", "execution", execution_id, "-o", "yaml"),
        ("get", "execution", execution_id, "-o", "json"),
        ("describe", "execution", execution_id),
    ):
        shown = cli(*args)
        views += [shown.stdout, shown.stderr]
    return "\n".join(views)


def _live_deltas(client: Client, execution_id: str) -> list[str]:
    return [
        update.event.message_delta.text
        for _, update in client.watch(execution_id)
        if update.event.WhichOneof("change") == "message_delta"
    ]


def _assert_no_secret(text: str) -> None:
    for secret in EVERY_SECRET:
        assert secret not in text, f"{secret} leaked"


def test_a_secret_streamed_three_characters_at_a_time_is_masked_live_stored_and_replayed(
    client: Client,
    cli: Cli,
    model: ScriptedModel,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every delta recorded as it comes (both engines' sinks run in this
    # process), so each secret reaches the recorder in several pieces.
    monkeypatch.setattr(recording, "FLUSH_SECONDS", 0.0)
    caplog.set_level(logging.DEBUG)
    client.apply(MANIFESTS)
    answer = f"Tokens: {ENV_SECRET}, {AGENT_SECRET},{RUN_SECRET} and {MCP_SECRET}."
    # Slow to start, so the watch below sees every delta live.
    model.add(Reply(content=answer, delay_seconds=0.5))

    started = client.run(
        None, "Say the tokens", instance="keeper-vault", secrets={"RUN_TOKEN": RUN_SECRET}
    )
    deltas = _live_deltas(client, started.metadata.id)
    final = wait_for_end(client, started.metadata.id)

    assert final.status.phase == COMPLETED, final.status.error
    assert final.status.messages[-1].content == "Tokens: ***, ***,*** and ***."
    assert len(deltas) > 5
    assert "".join(deltas) == final.status.messages[-1].content
    # Text that cannot be a secret's start is not held back.
    assert deltas[0] == "Tok"
    _assert_no_secret(_shown_everywhere(client, cli, started.metadata.id))
    _assert_no_secret(caplog.text)


def test_an_mcp_server_secret_echoed_by_tools_and_a_model_error_quoting_it_are_masked(
    client: Client, cli: Cli, model: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.apply(MANIFESTS)
    model.add(
        Reply(tool_calls=(ToolCallStep("read_env", {"name": "MCP_TOKEN"}),)),
        # The model repeats what it read, in a tool's arguments and its text.
        Reply(
            content=f"It is {MCP_SECRET}; echoing it.",
            tool_calls=(ToolCallStep("echo", {"text": f"token={MCP_SECRET}"}),),
        ),
        # An endpoint refusing the conversation, quoting the tool result back.
        Reply(status=400, content=f"invalid message: 'token={MCP_SECRET}' is not allowed"),
    )

    started = client.run(None, "Read the MCP token", instance="keeper-vault")
    final = wait_for_end(client, started.metadata.id)

    assert final.status.phase == FAILED
    assert "status 400" in final.status.error or "400" in final.status.error
    assert "token=***" in final.status.error
    read, echoed = final.status.tool_calls
    assert (read.result, echoed.result) == ("***", "token=***")
    assert dict(echoed.args) == {"text": "token=***"}
    system = [m for m in final.status.messages if m.type == execution_pb2.MESSAGE_TYPE_SYSTEM]
    assert system and "token=***" in system[-1].content
    _assert_no_secret(_shown_everywhere(client, cli, started.metadata.id))
    _assert_no_secret(caplog.text)


def test_a_tool_server_whose_failing_command_line_holds_a_secret_fails_masked(
    client: Client, cli: Cli, model: ScriptedModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.apply(
        f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {{name: Broken}}
spec:
  instructions: Your tool server never starts.
  mcp_servers:
    - name: broken
      stdio:
        command: {sys.executable}
        args: ["-c", "import sys; print('refused', sys.argv[1], file=sys.stderr); sys.exit(3)",
               "--token=${{RUN_TOKEN}}"]
"""
    )

    run = cli("run", "broken", "hello", "--secret", f"RUN_TOKEN={RUN_SECRET}")
    assert run.exit_code == 1, run.stderr
    (execution,) = client.list_executions()
    final = wait_for_end(client, execution.metadata.id)

    assert final.status.phase == FAILED
    assert "could not start" in final.status.error
    assert "--token=***" in final.status.error
    assert "refused --token=***" in final.status.error
    assert RUN_SECRET not in run.stdout + run.stderr
    _assert_no_secret(_shown_everywhere(client, cli, execution.metadata.id))
    _assert_no_secret(caplog.text)
    assert model.requests == []
