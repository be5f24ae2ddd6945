"""The Done-when walk-through of the control plane, exactly as a user types it:
`stigmer server start`, apply, re-apply, change one agent, inspect, stop."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stigmer.testing.ports import free_port

FOUR = (Path(__file__).parent.parent / "control_plane" / "manifests.py").read_text()
FOUR = FOUR.split('FOUR_RESOURCES = """\\\n', 1)[1].split('"""', 1)[0]


class Stigmer:
    def __init__(self, home: Path) -> None:
        port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
        self.env.update(
            STIGMER_HOME=str(home), STIGMER_PORT=str(port), STIGMER_SERVER=f"127.0.0.1:{port}"
        )

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stigmer.cli.main", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )


@pytest.fixture
def stigmer(tmp_path: Path) -> Iterator[Stigmer]:
    run = Stigmer(tmp_path / "home")
    yield run
    run("server", "stop")


@pytest.mark.slow
def test_server_daemon_apply_walkthrough(stigmer: Stigmer, tmp_path: Path) -> None:
    started = stigmer("server", "start")
    assert started.returncode == 0, started.stderr
    assert stigmer("server", "status").returncode == 0
    assert stigmer("server", "start").returncode == 1  # already running

    manifest = tmp_path / "resources.yaml"
    manifest.write_text(FOUR)
    first = stigmer("apply", "-f", str(manifest))
    assert first.returncode == 0, first.stderr
    assert [line.split()[1] for line in first.stdout.splitlines()] == ["created"] * 4

    second = stigmer("apply", "-f", str(manifest))
    assert [line.split()[1] for line in second.stdout.splitlines()] == ["unchanged"] * 4

    manifest.write_text(FOUR.replace("answer support questions", "Answer support questions"))
    manifest.write_text(FOUR.replace("politely and briefly", "politely, briefly and in English"))
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
    assert stopped.returncode == 0
    assert stigmer("server", "status").returncode == 3
    assert stigmer("get", "agents").returncode == 3
