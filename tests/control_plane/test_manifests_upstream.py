"""Manifests written for upstream Stigmer: camelCase keys, McpServer names as
references, and errors that name the line of the field at fault.

The first tests apply through the real `stigmer` command against the real
server on both stores; the rest read manifests, which needs no server.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.errors import InvalidArgument
from stigmer.resources.kinds import KINDS
from stigmer.resources.manifest_nodes import read_document_nodes
from stigmer.resources.manifests import inspect_manifest, parse_manifest
from stigmer.testing.cli import Cli

MCP_COMMAND = f"""\
    command: {sys.executable}
    args: ["-m", "stigmer.testing.mcp_server"]"""

UPSTREAM = f"""\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: code-reviewer
  labels: {{team: platform}}
spec:
  description: Reviews pull requests.
  instructions: Review pull requests and point out risky changes.
  mcpServers: [github, filesystem]
  envSpec:
    data:
      REVIEW_DEPTH: {{value: deep, isSecret: false}}
---
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata:
  name: github
spec:
  stdio:
{MCP_COMMAND}
    workingDir: {Path.cwd()}
  defaultEnabledTools: [add]
---
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata:
  name: filesystem
spec:
  stdio:
{MCP_COMMAND}
"""


def write(tmp_path: Path, text: str, name: str = "manifest.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def line_containing(text: str, fragment: str) -> int:
    """The 1-based line of the one line holding `fragment`."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(found) == 1, f"{fragment!r} is on lines {found}"
    return found[0]


# -- applied through the CLI, on both stores ---------------------------------


def test_upstream_manifest_applies_and_names_become_references(
    cli: Cli, tmp_path: Path, client: Client
) -> None:
    applied = cli("apply", "-f", write(tmp_path, UPSTREAM))
    assert applied.exit_code == 0, applied.stderr
    # Dependencies first: the McpServers the agent names come before it.
    assert applied.stdout.splitlines() == [
        "mcpserver/github created",
        "mcpserver/filesystem created",
        "agent/code-reviewer created",
    ]
    assert "warning" not in applied.stderr
    shown = cli("get", "agent", "code-reviewer", "-o", "yaml")
    assert shown.exit_code == 0, shown.stderr
    spec = yaml.safe_load(shown.stdout)["spec"]
    assert spec["mcp_servers"] == [{"ref": "github"}, {"ref": "filesystem"}]
    assert spec["env_spec"]["data"]["REVIEW_DEPTH"] == {"value": "deep"}
    github = client.get("mcpserver", "github")
    assert list(github.spec.default_enabled_tools) == ["add"]
    assert github.spec.stdio.working_dir == str(Path.cwd())
    again = cli("apply", "-f", write(tmp_path, UPSTREAM))
    assert again.stdout.split().count("unchanged") == 3


def test_mcp_server_given_as_a_number_names_the_expected_shape_and_its_line(
    cli: Cli, tmp_path: Path, client: Client
) -> None:
    manifest = UPSTREAM.replace("mcpServers: [github, filesystem]", "mcpServers:\n    - 42")
    path = write(tmp_path, manifest)
    result = cli("apply", "-f", path)
    assert result.exit_code == 2
    line = line_containing(manifest, "- 42")
    assert (
        f"{path}:{line}: spec.mcp_servers[0]: expected a mapping (an inline MCP server or "
        "{ref: NAME}) or an McpServer name, got a number"
    ) in result.stderr
    assert "unknown field" not in result.stderr
    assert client.list("mcpserver") == []


def test_dangling_reference_by_name_points_at_the_line_of_the_name(
    cli: Cli, tmp_path: Path, client: Client
) -> None:
    manifest = UPSTREAM.replace("[github, filesystem]", "\n    - github\n    - gitlab")
    path = write(tmp_path, manifest)
    result = cli("apply", "-f", path)
    assert result.exit_code == 1
    line = line_containing(manifest, "- gitlab")
    assert f"{path}:{line}: spec.mcp_servers[1].ref: McpServer 'gitlab' not found" in (
        result.stderr
    )
    assert client.list("agent") == []


def test_apply_warns_once_per_document_about_fields_not_used_yet(
    cli: Cli, tmp_path: Path, client: Client
) -> None:
    manifest = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: planner}
spec:
  instructions: Plan the work and hand parts to helpers.
  subAgents:
    - {name: writer, agentRef: writer}
    - {name: checker, instructions: Check the plan.}
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: plain}
spec:
  instructions: Answer in one short sentence.
"""
    result = cli("apply", "-f", write(tmp_path, manifest))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: agent/planner: spec.sub_agents is accepted but not used yet",
    ]
    assert result.stdout.split() == ["agent/planner", "created", "agent/plain", "created"]
    stored = client.get("agent", "planner")
    assert [sub.name for sub in stored.spec.sub_agents] == ["writer", "checker"]


# -- reading, no server -------------------------------------------------------


def _filled(message: Message) -> Message:
    """Every field of the message set (the first member of each oneof), with
    values every field rule accepts, nested messages included."""
    _fill(message, message.DESCRIPTOR, depth=0)
    return message


def _sample(field: FieldDescriptor) -> Any:
    if field.enum_type is not None:
        return field.enum_type.values[1].number
    if field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
        return True
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        if field.containing_type is not None and field.containing_type.name == "ToolPolicy":
            return "sample/tool_*"  # a pattern names a server and a tool
        return "sample-1234567890"
    if field.cpp_type in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        return 1.5
    return 7


def _fill(message: Any, descriptor: Any, depth: int) -> None:
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof.fields[0] is not field:
            continue
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            target = getattr(message, field.name)
            if value_field.message_type is not None:
                _fill(target["key_1"], value_field.message_type, depth + 1)
            else:
                target["key_1"] = _sample(value_field)
        elif entry is not None:
            if entry.full_name == "google.protobuf.Timestamp":
                item = getattr(message, field.name)
                if field.is_repeated:
                    item = item.add()
                item.FromSeconds(1_700_000_000)
            elif entry.full_name.startswith("google.protobuf.") or depth > 4:
                continue
            elif field.is_repeated:
                _fill(getattr(message, field.name).add(), entry, depth + 1)
            else:
                _fill(getattr(message, field.name), entry, depth + 1)
        elif field.is_repeated:
            getattr(message, field.name).append(_sample(field))
        else:
            setattr(message, field.name, _sample(field))
    if descriptor.name == "ApiResourceMetadata":
        message.name = "Sample Name"


APPLIED_KINDS = [kind for kind in KINDS if kind.is_user_written]


@pytest.mark.parametrize("is_camel_case", [True, False], ids=["camelCase", "snake_case"])
@pytest.mark.parametrize("kind", APPLIED_KINDS, ids=[kind.name for kind in APPLIED_KINDS])
def test_every_field_at_every_level_reads_in_either_spelling(
    kind: Any, is_camel_case: bool
) -> None:
    original = _filled(kind.new_message())
    original.api_version = "agentic.stigmer.ai/v1"  # type: ignore[attr-defined]
    original.kind = kind.name  # type: ignore[attr-defined]
    body = json_format.MessageToDict(original, preserving_proto_field_name=not is_camel_case)
    text = yaml.safe_dump(body)
    if is_camel_case:
        assert "apiVersion" in text and "api_version" not in text
    [document] = parse_manifest(text, "sample.yaml")
    assert document.resource == original


def test_both_spellings_of_one_field_in_one_mapping_is_an_error_naming_both() -> None:
    manifest = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: mixed}
spec:
  instructions: Review pull requests carefully.
  mcp_servers: [github]
  mcpServers: [gitlab]
"""
    with pytest.raises(InvalidArgument) as raised:
        parse_manifest(manifest, "mixed.yaml")
    assert raised.value.message == (
        "mixed.yaml:7: spec.mcp_servers: given as both 'mcp_servers' and 'mcpServers' "
        "(first at line 6); give it once"
    )


WRONG_SHAPES = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: shapes
  labels: [team, platform]
spec:
  instructions: Review pull requests carefully.
  model: {name: big}
  mcpServers:
    - [github]
    - ref: github
      enabledTools: add
    - name: calc
      stdio: python -m calc
  subAgents: {name: helper}
  skillRefs: planning
  temperature: 0.2
"""


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("labels:", "metadata.labels: expected a mapping of keys to strings, got a list"),
        ("model:", "spec.model: expected a string, got a mapping"),
        (
            "- [github]",
            "spec.mcp_servers[0]: expected a mapping (an inline MCP server or {ref: NAME}) "
            "or an McpServer name, got a list",
        ),
        (
            "enabledTools: add",
            "spec.mcp_servers[1].enabled_tools: expected a list of strings, got a string",
        ),
        (
            "stdio: python",
            "spec.mcp_servers[2].stdio: expected a mapping of StdioTransport fields, got a string",
        ),
        (
            "subAgents:",
            "spec.sub_agents: expected a list of SubAgent entries, got a mapping",
        ),
        (
            "skillRefs:",
            "spec.skill_refs: expected a list of SkillRef entries, got a string",
        ),
        ("temperature:", "unknown field 'spec.temperature' (AgentSpec has: description,"),
    ],
    ids=[
        "list-for-map",
        "mapping-for-string",
        "list-for-mcp-server",
        "string-for-list",
        "string-for-message",
        "mapping-for-list",
        "string-for-list-of-refs",
        "unknown-field",
    ],
)
def test_wrong_shape_names_the_expected_shape_at_the_fields_line(
    fragment: str, message: str
) -> None:
    [reading] = inspect_manifest(WRONG_SHAPES, "shapes.yaml")
    assert reading.document is None
    expected = f"shapes.yaml:{line_containing(WRONG_SHAPES, fragment)}: {message}"
    assert [str(p) for p in reading.problems if str(p).startswith(expected)] != [], [
        str(p) for p in reading.problems
    ]


def test_every_wrong_shape_of_a_document_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_manifest(WRONG_SHAPES, "shapes.yaml")
    lines = raised.value.message.splitlines()
    assert len(lines) == 8
    assert all(line.startswith("shapes.yaml:") for line in lines)
    assert "'spec.mcpServers[0].g'" not in raised.value.message


def test_field_rule_violation_points_at_the_fields_line() -> None:
    manifest = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: terse
  labels:
    team: platform
    "bad key": x
spec:
  description: Short ones.
  instructions: too short
"""
    with pytest.raises(InvalidArgument) as raised:
        parse_manifest(manifest, "terse.yaml")
    assert raised.value.message.splitlines() == [
        "terse.yaml:7: metadata.labels['bad key']: does not match regex pattern "
        "`^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$`",
        "terse.yaml:10: spec.instructions: must be at least 10 characters",
    ]
    assert [v.field for v in raised.value.violations] == [
        "metadata.labels['bad key']",
        "spec.instructions",
    ]


def test_missing_oneof_points_at_the_entry_and_missing_spec_at_the_document() -> None:
    manifest = """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: nothing}
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: half}
spec:
  instructions: Review pull requests carefully.
  mcp_servers:
    - name: calc
      enabled_tools: [add]
"""
    with pytest.raises(InvalidArgument) as raised:
        parse_manifest(manifest, "half.yaml")
    assert raised.value.message.splitlines() == [
        "half.yaml:1: spec: value is required",
        "half.yaml:11: spec.mcp_servers[0].source: exactly one field is required in oneof",
    ]


def test_unknown_enum_value_names_the_known_values_at_its_line() -> None:
    node = yaml.compose("spec:\n  message: hi\n  onBusySession: WAIT\n")
    assert node is not None
    read = read_document_nodes(node, execution_pb2.AgentExecution.DESCRIPTOR)
    assert [(p.line, p.message) for p in read.problems] == [
        (
            3,
            "spec.on_busy_session: unknown value 'WAIT' (expected one of "
            "BUSY_SESSION_POLICY_UNSPECIFIED, BUSY_SESSION_POLICY_QUEUE, "
            "BUSY_SESSION_POLICY_REJECT)",
        )
    ]
    assert read.lines["spec.on_busy_session"] == 3


def test_string_fields_take_the_text_as_written_and_integers_as_numbers() -> None:
    manifest = """\
apiVersion: agentic.stigmer.ai/v1
kind: Environment
metadata: {name: text, version: 0}
spec:
  data:
    MODE: {value: 0755}
    ENABLED: {value: on}
---
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: slow}
spec:
  http: {url: "http://127.0.0.1:9/mcp", timeoutSeconds: ten}
"""
    [environment, mcp] = inspect_manifest(manifest, "text.yaml")
    assert environment.document is not None
    data = environment.document.resource.spec.data  # type: ignore[attr-defined]
    assert (data["MODE"].value, data["ENABLED"].value) == ("0755", "on")
    assert [str(p) for p in mcp.problems] == [
        "text.yaml:13: spec.http.timeout_seconds: expected a whole number, got a string"
    ]


def test_one_resource_defined_twice_is_an_error_at_the_second() -> None:
    manifest = UPSTREAM + "---\n" + UPSTREAM.split("---\n")[1].replace("github", "GitHub")
    with pytest.raises(InvalidArgument) as raised:
        parse_manifest(manifest, "twice.yaml")
    first = UPSTREAM.splitlines().index("---", 1) + 2  # the first McpServer's first line
    assert raised.value.message == (
        f"twice.yaml:{line_containing(manifest, 'name: GitHub')}: mcpserver/github is "
        f"defined twice (first at twice.yaml:{first})"
    )


def test_merge_keys_fill_in_fields_and_own_keys_override_them() -> None:
    manifest = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: calc}
spec:
  instructions: Add numbers with the add tool.
  mcpServers:
    - name: calc
      stdio: &python
        command: python
        args: ["-m", "calc"]
    - name: calc-debug
      stdio:
        <<: *python
        args: ["-X", "dev", "-m", "calc"]
        workingDir: /tmp
"""
    [document] = parse_manifest(manifest, "merge.yaml")
    first, second = document.resource.spec.mcp_servers  # type: ignore[attr-defined]
    assert (second.stdio.command, list(second.stdio.args), second.stdio.working_dir) == (
        "python",
        ["-X", "dev", "-m", "calc"],
        "/tmp",
    )
    assert list(first.stdio.args) == ["-m", "calc"]
    assert document.line_of("spec.mcp_servers[1].stdio.working_dir") == line_containing(
        manifest, "workingDir"
    )
