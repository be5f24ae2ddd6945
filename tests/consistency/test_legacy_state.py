"""The failure that motivated Stigmer's design (DESIGN.md §1), end to end
through the CLI: an older version left `pr-reviewer-default` behind with the
agent's status empty. Running the agent adopts it instead of failing with
"AgentInstance with slug 'pr-reviewer-default' already exists"."""

from __future__ import annotations

import logging

import pytest

from stigmer.client import Client
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel
from tests.control_plane.seeding import count, insert_bare_agent, insert_instance


def test_running_an_agent_whose_default_instance_was_orphaned_adopts_it(
    cli: Cli,
    client: Client,
    model: ScriptedModel,
    store_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent_id = insert_bare_agent(store_url, "PR Reviewer", "pr-reviewer")
    instance_id = insert_instance(store_url, "pr-reviewer-default", agent_id)
    assert cli("check").exit_code == 1
    caplog.set_level(logging.INFO)
    model.add(Reply(content="Looks good to me."))

    run = cli("run", "pr-reviewer", "Review PR #42, please.")

    assert run.exit_code == 0, run.stdout + run.stderr
    assert "agent: Looks good to me." in run.stdout
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("Default instance already exists, fetching existing") for m in messages)
    assert any(m.startswith("Found existing default instance") for m in messages)
    assert any(m.startswith("Updated agent status with default_instance_id") for m in messages)
    assert client.get("agent", "pr-reviewer").status.default_instance_id == instance_id
    assert count(store_url, "AgentInstance") == 1
    (execution,) = client.list_executions()
    assert execution.status.agent_instance_id == instance_id
    checked = cli("check")
    assert checked.exit_code == 0, checked.stdout
