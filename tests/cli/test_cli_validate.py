"""`stigmer validate`: every offline check of `apply`, no server needed.

STIGMER_SERVER points at a port nothing listens on: a validate that tried to
reach a server would exit 3, not 0 or 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stigmer.api.v1 import agent_pb2
from stigmer.local_ports import free_local_port
from stigmer.testing.cli import Cli

AGENT = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Code Reviewer
spec:
  instructions: Review pull requests and point out risky changes.
  mcpServers: [github]
"""
MCP_SERVER = """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: github}
spec:
  stdio: {command: python, args: ["-m", "stigmer.testing.mcp_server"]}
"""
BROKEN = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Broken
spec:
  instructions: too short
  mcpServers:
    - 42
  temperature: 0.2
---
apiVersion: agentic.stigmer.ai/v1
kind: Robot
metadata: {name: r2}
"""


@pytest.fixture
def offline_cli(stigmer_home: Path, tmp_path: Path) -> Cli:
    """The CLI with STIGMER_SERVER at a closed port on 127.0.0.1."""
    return Cli.isolated(stigmer_home, {"SERVER": f"127.0.0.1:{free_local_port()}"}, cwd=tmp_path)


def write(folder: Path, name: str, text: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return str(path)


def test_valid_manifest_is_reported_per_document_without_a_server(
    offline_cli: Cli, tmp_path: Path
) -> None:
    path = write(tmp_path, "agents.yaml", AGENT + "---\n" + MCP_SERVER)
    result = offline_cli("validate", "-f", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["agent/code-reviewer valid", "mcpserver/github valid"]
    assert result.stderr == ""


def test_every_problem_is_listed_with_its_line_and_exits_2(
    offline_cli: Cli, tmp_path: Path
) -> None:
    manifest = MCP_SERVER + "---\n" + BROKEN
    path = write(tmp_path, "mixed.yaml", manifest)
    agent_fields = ", ".join(f.name for f in agent_pb2.AgentSpec.DESCRIPTOR.fields)
    result = offline_cli("validate", "-f", path)
    assert result.exit_code == 2
    assert result.stdout.splitlines() == ["mcpserver/github valid"]

    def at(fragment: str) -> str:
        [line] = [n for n, text in enumerate(manifest.splitlines(), 1) if fragment in text]
        return f"error: {path}:{line}: "

    assert result.stderr.splitlines() == [
        at("instructions:") + "spec.instructions: must be at least 10 characters",
        at("- 42") + "spec.mcp_servers[0]: expected a mapping (an inline MCP server or "
        "{ref: NAME}) or an McpServer name, got a number",
        at("temperature") + f"unknown field 'spec.temperature' (AgentSpec has: {agent_fields})",
        at("Robot") + "kind: unknown kind 'Robot' (known: Environment, McpServer, Agent, "
        "AgentInstance, Session)",
    ]


def test_a_directory_and_stdin_are_read_and_a_resource_given_twice_is_an_error(
    offline_cli: Cli, tmp_path: Path
) -> None:
    folder = tmp_path / "manifests"
    write(folder, "a-agent.yaml", AGENT)
    first = write(folder, "b-mcp.yml", MCP_SERVER)
    write(folder, "notes.txt", "not a manifest")
    result = offline_cli("validate", "-f", str(folder), "-f", "-", stdin=MCP_SERVER)
    assert result.exit_code == 2
    assert result.stdout.splitlines() == ["agent/code-reviewer valid", "mcpserver/github valid"]
    assert result.stderr.splitlines() == [
        f"error: <stdin>:3: mcpserver/github is defined twice (first at {first}:1)"
    ]


def test_validate_prints_the_warnings_apply_prints(offline_cli: Cli, tmp_path: Path) -> None:
    manifest = AGENT + "  subAgents:\n    - {name: helper, agentRef: helper}\n"
    result = offline_cli("validate", "-f", write(tmp_path, "agent.yaml", manifest))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["agent/code-reviewer valid"]
    assert result.stderr.splitlines() == [
        "warning: agent/code-reviewer: spec.sub_agents is accepted but not used yet"
    ]


def test_malformed_yaml_after_a_valid_document_reports_both(
    offline_cli: Cli, tmp_path: Path
) -> None:
    path = write(tmp_path, "bad.yaml", MCP_SERVER + "---\nkind: Agent\nmetadata: {name: x\n")
    result = offline_cli("validate", "-f", path)
    assert result.exit_code == 2
    assert result.stdout.splitlines() == ["mcpserver/github valid"]
    assert result.stderr.startswith(f"error: {path}:8: invalid YAML")


def test_missing_file_and_empty_input_exit_2(offline_cli: Cli, tmp_path: Path) -> None:
    missing = offline_cli("validate", "-f", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2
    assert "nope.yaml: no such file or directory" in missing.stderr
    empty = offline_cli("validate", "-f", "-", stdin="---\n")
    assert empty.exit_code == 2
    assert "no resources found" in empty.stderr
