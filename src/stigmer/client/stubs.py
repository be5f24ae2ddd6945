"""The generated gRPC stubs and request types of each kind, by kind name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stigmer.api.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    agentinstance_pb2,
    agentinstance_pb2_grpc,
    environment_pb2,
    environment_pb2_grpc,
    mcpserver_pb2,
    mcpserver_pb2_grpc,
    session_pb2,
    session_pb2_grpc,
)


@dataclass(frozen=True)
class KindStubs:
    command: Any
    query: Any
    apply_request: Any


KIND_STUBS: dict[str, KindStubs] = {
    "Environment": KindStubs(
        environment_pb2_grpc.EnvironmentCommandControllerStub,
        environment_pb2_grpc.EnvironmentQueryControllerStub,
        environment_pb2.ApplyEnvironmentRequest,
    ),
    "McpServer": KindStubs(
        mcpserver_pb2_grpc.McpServerCommandControllerStub,
        mcpserver_pb2_grpc.McpServerQueryControllerStub,
        mcpserver_pb2.ApplyMcpServerRequest,
    ),
    "Agent": KindStubs(
        agent_pb2_grpc.AgentCommandControllerStub,
        agent_pb2_grpc.AgentQueryControllerStub,
        agent_pb2.ApplyAgentRequest,
    ),
    "AgentInstance": KindStubs(
        agentinstance_pb2_grpc.AgentInstanceCommandControllerStub,
        agentinstance_pb2_grpc.AgentInstanceQueryControllerStub,
        agentinstance_pb2.ApplyAgentInstanceRequest,
    ),
    "Session": KindStubs(
        session_pb2_grpc.SessionCommandControllerStub,
        session_pb2_grpc.SessionQueryControllerStub,
        session_pb2.ApplySessionRequest,
    ),
}
