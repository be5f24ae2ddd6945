"""The domains of one server, wired together over one store."""

from __future__ import annotations

from stigmer.domain.agent.client import AgentClient
from stigmer.domain.agent.controller import AgentController
from stigmer.domain.agentinstance.client import AgentInstanceClient
from stigmer.domain.agentinstance.controller import AgentInstanceController
from stigmer.domain.clients import ResourceClient
from stigmer.domain.environment.controller import EnvironmentController
from stigmer.domain.execution.controller import ExecutionController
from stigmer.domain.mcpserver.controller import McpServerController
from stigmer.domain.resource_controller import ResourceController
from stigmer.domain.resource_watch import ResourceWatcher
from stigmer.domain.session.client import SessionClient
from stigmer.domain.session.controller import SessionController
from stigmer.resources.kinds import KindInfo
from stigmer.store.base import Store


class Domains:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.environments = EnvironmentController(store, self)
        self.mcp_servers = McpServerController(store, self)
        self.agents = AgentController(store, self)
        self.agent_instances = AgentInstanceController(store, self)
        self.sessions = SessionController(store, self)
        self.executions = ExecutionController(store, self)
        self.controllers: dict[str, ResourceController] = {
            c.kind.name: c
            for c in (
                self.environments,
                self.mcp_servers,
                self.agents,
                self.agent_instances,
                self.sessions,
                self.executions,
            )
        }
        self.watcher = ResourceWatcher(store)
        self.environment_client = ResourceClient(self.environments)
        self.mcp_server_client = ResourceClient(self.mcp_servers)
        self.agent_client = AgentClient(self.agents)
        self.agent_instance_client = AgentInstanceClient(self.agent_instances)
        self.session_client = SessionClient(self.sessions)

    def controller(self, kind: KindInfo) -> ResourceController:
        return self.controllers[kind.name]
