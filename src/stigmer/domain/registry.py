"""The domains of one server, wired together over one store.

Each controller gets, at construction, the readers and clients of the
kinds it reaches: the wiring is all here, in dependency order. The one
edge that cannot be a constructor argument is the delete cascade into
executions (sessions own executions; creating an execution may start a
session), so the cascade is wired last, for every owner alike.
"""

from __future__ import annotations

from typing import Any

from stigmer.domain.agent.client import AgentClient
from stigmer.domain.agent.controller import AgentController
from stigmer.domain.agentinstance.client import AgentInstanceClient
from stigmer.domain.agentinstance.controller import AgentInstanceController
from stigmer.domain.clients import ResourceClient, ResourceReader
from stigmer.domain.environment.controller import EnvironmentController
from stigmer.domain.execution.controller import ExecutionController
from stigmer.domain.execution.queue import ExecutionQueue
from stigmer.domain.execution.signals import ExecutionSignals, NoEngine
from stigmer.domain.execution.usage import UsageController
from stigmer.domain.mcpserver.controller import McpServerController
from stigmer.domain.resource_controller import ResourceController, WritableResourceController
from stigmer.domain.resource_watch import ResourceWatcher
from stigmer.domain.session.client import SessionClient
from stigmer.domain.session.controller import SessionController
from stigmer.domain.skill.controller import SkillController
from stigmer.errors import InvalidArgument
from stigmer.pipeline.framework import Pipeline
from stigmer.resources.kinds import AGENT, AGENT_EXECUTION, AGENT_INSTANCE, SKILL, KindInfo
from stigmer.resources.prices import PriceTable
from stigmer.resources.run_configs import RunConfig
from stigmer.store.base import Store

# Kinds only the system writes, and how users make one instead.
_NOT_WRITTEN = {
    AGENT_EXECUTION.name: "executions are not applied from manifests; start one with `stigmer run`",
    SKILL.name: "skills are pushed, not applied: stigmer skill push DIR",
}


class Domains:
    def __init__(
        self,
        store: Store,
        signals: ExecutionSignals | None = None,
        *,
        run_profile: RunConfig | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self.store = store
        # No engine: executions stay PENDING (tools that only read or check).
        signals = signals if signals is not None else NoEngine()
        self.environments = EnvironmentController(store)
        self.environment_client = ResourceClient(self.environments)
        self.mcp_servers = McpServerController(store)
        self.mcp_server_client = ResourceClient(self.mcp_servers)
        self.skills = SkillController(store)
        self.skill_client = ResourceClient(self.skills)
        self.agent_instances = AgentInstanceController(
            store, agents=ResourceReader(AGENT), environments=self.environment_client
        )
        self.agent_instance_client = AgentInstanceClient(self.agent_instances)
        self.agents = AgentController(
            store,
            mcp_servers=self.mcp_server_client,
            skills=self.skill_client,
            instances=self.agent_instance_client,
        )
        self.agent_client = AgentClient(self.agents)
        self.sessions = SessionController(store, instances=self.agent_instance_client)
        self.session_client = SessionClient(self.sessions)
        self.executions = ExecutionController(
            store,
            signals,
            agents=self.agent_client,
            instances=ResourceReader(AGENT_INSTANCE),
            sessions=self.session_client,
            skills=self.skill_client,
            run_profile=run_profile,
            prices=prices,
        )
        self.usage = UsageController(store, agents=ResourceReader(AGENT))
        self.execution_client = ResourceClient(self.executions)
        self.execution_queue = ExecutionQueue(store, self.executions.broker, signals)
        self.agents.owns(self.agent_instance_client)
        self.agent_instances.owns(self.session_client)
        self.sessions.owns(self.execution_client)
        self.writable: dict[str, WritableResourceController] = {
            c.kind.name: c
            for c in (
                self.environments,
                self.mcp_servers,
                self.agents,
                self.agent_instances,
                self.sessions,
            )
        }
        self.controllers: dict[str, ResourceController] = {
            **self.writable,
            self.executions.kind.name: self.executions,
            self.skills.kind.name: self.skills,
        }
        self.watcher = ResourceWatcher(store)

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        """Every write pipeline of the server (the crash matrix runs each)."""
        return (
            *(p for controller in self.controllers.values() for p in controller.pipelines),
            *self.execution_queue.pipelines,
        )

    def controller(self, kind: KindInfo) -> ResourceController:
        return self.controllers[kind.name]

    def writable_controller(self, kind: KindInfo) -> WritableResourceController:
        """The controller of a kind users create, update and apply.

        Raises:
            InvalidArgument: the kind is written only by the system.
        """
        controller = self.writable.get(kind.name)
        if controller is None:
            raise InvalidArgument.for_field(
                "kind", _NOT_WRITTEN.get(kind.name, f"{kind.name} is not written by users")
            )
        return controller
