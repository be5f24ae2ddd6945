"""The Done-when walk-through of the control plane, exactly as a user types it:
`stigmer server start`, apply, re-apply, change one agent, inspect, stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stigmer.local_ports import free_local_port
from stigmer.testing.cli import Cli
from tests.control_plane.manifests import FOUR_RESOURCES


@pytest.fixture
def stigmer(tmp_path: Path) -> Iterator[Cli]:
    """The CLI with a home of its own and a free port for the server it starts;
    that server is stopped at the end."""
    port = free_local_port()
    run = Cli.isolated(
        tmp_path / "home", {"PORT": str(port), "SERVER": f"127.0.0.1:{port}"}, cwd=tmp_path
    )
    yield run
    run("server", "stop")


@pytest.mark.slow
def test_server_daemon_apply_walkthrough(stigmer: Cli, tmp_path: Path) -> None:
    started = stigmer("server", "start")
    assert started.exit_code == 0, started.stderr
    assert stigmer("server", "status").exit_code == 0
    assert stigmer("server", "start").exit_code == 1  # already running

    manifest = tmp_path / "resources.yaml"
    manifest.write_text(FOUR_RESOURCES)
    first = stigmer("apply", "-f", str(manifest))
    assert first.exit_code == 0, first.stderr
    assert [line.split()[1] for line in first.stdout.splitlines()] == ["created"] * 4

    second = stigmer("apply", "-f", str(manifest))
    assert [line.split()[1] for line in second.stdout.splitlines()] == ["unchanged"] * 4

    manifest.write_text(
        FOUR_RESOURCES.replace("politely and briefly", "politely, briefly and in English")
    )
    third = stigmer("apply", "-f", str(manifest))
    assert third.stdout.splitlines() == [
        "environment/prod unchanged",
        "mcpserver/github unchanged",
        "agent/pr-reviewer unchanged",
        "agent/support-bot configured",
    ]

    for name in ("pr-reviewer", "support-bot"):
        agent = yaml.safe_load(stigmer("get", "agent", name, "-o", "yaml").stdout)
        instance = yaml.safe_load(
            stigmer("get", "agentinstance", f"{name}-default", "-o", "yaml").stdout
        )
        assert agent["status"]["default_instance_id"] == instance["metadata"]["id"]
        assert instance["spec"]["agent_id"] == agent["metadata"]["id"]

    logs = stigmer("server", "logs")
    assert "Stigmer server listening" in logs.stdout
    assert "ghp-canary" not in logs.stdout

    stopped = stigmer("server", "stop")
    assert stopped.exit_code == 0
    assert stigmer("server", "status").exit_code == 3
    assert stigmer("get", "agents").exit_code == 3
