"""Sessions from the command line: the slug `get ses` shows is the one
`get`, `run --session` and `delete` take; `run --instance` picks the
instance; running one agent in another agent's session is refused."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerThread
from tests.backends import engine_options

AGENTS = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Greeter
spec:
  instructions: Greet the user in one short sentence.
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Calculator
spec:
  instructions: Add the numbers the user gives and answer with the sum.
---
apiVersion: agentic.stigmer.ai/v1
kind: AgentInstance
metadata:
  name: Greeter Staging
spec:
  agent_ref: greeter
"""
SESSION_OF_GREETER = re.compile(r"^greeter-[0-9a-hjkmnp-tv-z]{5}$")


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel(default=Reply(content="Hello!")) as scripted:
        yield scripted


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        connected.apply(AGENTS)
        yield connected


def test_get_ses_shows_the_readable_slug_that_get_run_and_delete_accept(
    cli: Cli, client: Client
) -> None:
    first = client.run("greeter", "hi")

    listed = cli("get", "ses")
    assert listed.exit_code == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[0] == "NAME"
    slug = row.split()[0]
    assert SESSION_OF_GREETER.match(slug), slug
    shown = cli("get", "ses", slug, "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["metadata"]["id"] == first.status.session_id
    continued = cli("run", "greeter", "again", "--session", slug, "--no-follow")
    assert continued.exit_code == 0, continued.stderr
    assert client.get_execution(continued.stdout.strip()).status.session_id == (
        first.status.session_id
    )
    deleted = cli("delete", "ses", slug)
    assert deleted.exit_code == 0, deleted.stderr
    assert deleted.stdout.split() == [f"session/{slug}", "deleted"]
    assert client.list("session") == []


def test_run_in_another_agents_session_exits_1_naming_both_agents(cli: Cli, client: Client) -> None:
    started = client.run("greeter", "hi")
    slug = client.get("session", started.status.session_id).metadata.slug

    refused = cli("run", "calculator", "1 + 2", "--session", slug, "--no-follow")

    assert refused.exit_code == 1
    assert "'greeter'" in refused.stderr and "'calculator'" in refused.stderr
    assert slug in refused.stderr
    assert len(client.list_executions()) == 1


def test_run_on_a_named_instance_and_its_misuses(cli: Cli, client: Client, tmp_path: Path) -> None:
    staging = client.get("agentinstance", "greeter-staging")

    ran = cli("run", "greeter", "hi", "--instance", "greeter-staging", "--no-follow")
    other_agent = cli("run", "calculator", "hi", "--instance", "greeter-staging", "--no-follow")
    both = cli(
        "run", "greeter", "hi", "--instance", "greeter-staging", "--session", "x", "--no-follow"
    )

    assert ran.exit_code == 0, ran.stderr
    execution = client.get_execution(ran.stdout.strip())
    assert execution.status.agent_instance_id == staging.metadata.id
    assert other_agent.exit_code == 1
    assert "'greeter'" in other_agent.stderr and "'calculator'" in other_agent.stderr
    assert both.exit_code == 2
    assert "instance" in both.stderr
    assert len(client.list_executions()) == 1
