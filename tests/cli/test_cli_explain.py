"""`stigmer explain`: the schema read from the API's descriptors, with no
server running (it must never need one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stigmer.testing.cli import Cli


@pytest.fixture
def offline_cli(tmp_path: Path) -> Cli:
    # Nothing listens here: explain must not try to reach a server.
    return Cli.isolated(tmp_path, {"SERVER": "127.0.0.1:1"}, cwd=tmp_path)


def _entry(output: str, name: str) -> str:
    """The lines of one field's entry: its name line up to the next blank line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{name}  <"))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def test_explain_agent_lists_instructions_with_its_length_rule_and_comment(
    offline_cli: Cli,
) -> None:
    result = offline_cli("explain", "agent")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("KIND:     Agent\nVERSION:  agentic.stigmer.ai/v1\n")
    assert "An AI agent: its instructions, model and tools." in result.stdout
    assert "camelCase is accepted" in result.stdout
    instructions = _entry(result.stdout, "instructions")
    assert "<string>" in instructions
    assert "min_len 10" in instructions
    assert "max_len 200000" in instructions
    assert "The system prompt" in instructions
    assert "required" in _entry(result.stdout, "spec")
    assert "<[]McpServerUsage>" in _entry(result.stdout, "mcp_servers")


def test_explain_descends_into_mcp_servers_and_shows_the_oneof_rule(offline_cli: Cli) -> None:
    result = offline_cli("explain", "agent.spec.mcp_servers")

    assert result.exit_code == 0, result.stderr
    assert "FIELD:    mcp_servers <[]McpServerUsage>" in result.stdout
    assert "One tool server an agent uses" in result.stdout
    ref = _entry(result.stdout, "ref")
    assert "one of source: ref | stdio | http (one is required)" in ref
    assert "max_len 72" in ref
    assert "<[]string>" in _entry(result.stdout, "enabled_tools")
    assert "instructions" not in result.stdout


def test_explain_accepts_camel_case_and_shows_map_and_enum_types(offline_cli: Cli) -> None:
    stdio = offline_cli("explain", "agent.spec.mcpServers.stdio")
    labels = offline_cli("explain", "agent.metadata.labels")
    phase = offline_cli("explain", "execution.status.phase")

    assert stdio.exit_code == 0, stdio.stderr
    assert "child process speaking MCP" in stdio.stdout
    assert "<map[string]string>" in _entry(stdio.stdout, "env")
    assert labels.exit_code == 0, labels.stderr
    assert "FIELD:    labels <map[string]string>" in labels.stdout
    assert "max_pairs 64" in labels.stdout
    assert phase.exit_code == 0, phase.stderr
    assert "<enum ExecutionPhase>" in phase.stdout
    assert "- EXECUTION_PHASE_COMPLETED" in phase.stdout


def test_explain_of_an_unknown_field_is_exit_2_naming_it_and_the_fields_that_exist(
    offline_cli: Cli,
) -> None:
    result = offline_cli("explain", "agent.spec.instructionz")

    assert result.exit_code == 2
    assert "Agent.spec has no field 'instructionz'" in result.stderr
    assert "instructions, model, mcp_servers" in result.stderr


def test_explain_below_a_scalar_field_or_of_an_unknown_kind_is_exit_2(offline_cli: Cli) -> None:
    below = offline_cli("explain", "agent.spec.model.name")
    unknown = offline_cli("explain", "agentz")

    assert below.exit_code == 2
    assert "Agent.spec.model is string and has no field 'name'" in below.stderr
    assert unknown.exit_code == 2
    assert "unknown kind 'agentz'" in unknown.stderr
