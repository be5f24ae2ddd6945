"""Tool policy patterns are checked when an Agent or McpServer is written:
a malformed one is INVALID_ARGUMENT naming the field, and nothing is stored."""

from __future__ import annotations

import pytest

from stigmer.client import Client
from stigmer.errors import InvalidArgument

AGENT = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: Careful}
spec:
  instructions: Answer carefully and briefly.
  tool_policy:
    allow: ["github/list_*"]
    ask: ["github/create_*", "%s"]
"""
MCP_SERVER = """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: github}
spec:
  stdio: {command: github-mcp}
  tool_policy:
    deny: ["%s"]
"""


def test_a_malformed_agent_pattern_is_invalid_argument_naming_the_field(client: Client) -> None:
    with pytest.raises(InvalidArgument) as raised:
        client.apply(AGENT % "github")

    assert [v.field for v in raised.value.violations] == ["spec.tool_policy.ask[1]"]
    assert "<mcp-server-slug>/<tool>" in str(raised.value)
    assert client.list("agent") == []


def test_a_malformed_mcp_server_pattern_is_invalid_argument_naming_the_field(
    client: Client,
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        client.apply(MCP_SERVER % "Git Hub/*")

    assert [v.field for v in raised.value.violations] == ["spec.tool_policy.deny[0]"]
    assert client.list("mcpserver") == []


def test_well_formed_policies_are_stored_as_given(client: Client) -> None:
    client.apply(AGENT % "*/delete_*")
    client.apply(MCP_SERVER % "github/delete_*")

    assert list(client.get("agent", "careful").spec.tool_policy.ask) == [
        "github/create_*",
        "*/delete_*",
    ]
    assert list(client.get("mcpserver", "github").spec.tool_policy.deny) == ["github/delete_*"]
