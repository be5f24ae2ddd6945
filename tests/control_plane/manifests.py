"""Manifests the control-plane tests apply."""

from __future__ import annotations

from stigmer.api.v1 import agent_pb2, meta_pb2

FOUR_RESOURCES = """\
apiVersion: agentic.stigmer.ai/v1
kind: Environment
metadata:
  name: prod
spec:
  data:
    GITHUB_TOKEN: {value: ghp-canary, is_secret: true}
    REGION: {value: eu-west-1}
---
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata:
  name: github
spec:
  stdio:
    command: python
    args: ["-m", "stigmer.testing.mcp_server"]
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: PR Reviewer
  labels: {team: platform}
spec:
  instructions: Review pull requests and point out risky changes.
  mcp_servers:
    - ref: github
      enabled_tools: [add]
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Support Bot
  labels: {team: support}
spec:
  instructions: Answer support questions politely and briefly.
"""


def agent(name: str, instructions: str = "Review code carefully and kindly.") -> agent_pb2.Agent:
    return agent_pb2.Agent(
        metadata=meta_pb2.ApiResourceMetadata(name=name),
        spec=agent_pb2.AgentSpec(instructions=instructions),
    )
