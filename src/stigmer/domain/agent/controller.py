"""Agents. Creating or applying an agent also ensures its default instance
and records it in `status.default_instance_id`, in the same transaction as
the agent itself: there is no moment at which the agent exists without it.

Every write that touches an agent re-checks the pointer, so state left
broken by a crash, an older version or a manual edit heals on the next
request instead of failing it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stigmer.domain.resource_controller import ResourceController
from stigmer.pipeline.context import ResourceContext
from stigmer.pipeline.envelope import encode
from stigmer.pipeline.framework import Step
from stigmer.resources.kinds import AGENT

if TYPE_CHECKING:
    from stigmer.domain.registry import Domains

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolveMcpServerRefsStep:
    """Every `spec.mcp_servers[i].ref` must name an existing McpServer."""

    domains: Domains
    name: str = "resolve-mcp-servers"

    async def run(self, context: ResourceContext) -> None:
        state = context.require_state()
        for index, usage in enumerate(state.spec.mcp_servers):
            if usage.ref:
                await self.domains.mcp_server_client.require_slug(
                    state.metadata.org,
                    usage.ref,
                    context.transaction,
                    field=f"spec.mcp_servers[{index}].ref",
                )


@dataclass(frozen=True)
class EnsureDefaultInstanceStep:
    """Get-or-create the default instance and point the agent's status at it."""

    domains: Domains
    name: str = "ensure-default-instance"

    async def run(self, context: ResourceContext) -> None:
        agent = context.require_state()
        instance = await self.domains.agent_instance_client.ensure_default_instance(
            agent, context.transaction
        )
        instance_id = instance.metadata.id
        if agent.status.default_instance_id == instance_id:
            return
        stored_version = agent.metadata.version
        if context.is_unchanged:
            # Nothing else was written by this request: the repair is a
            # write of its own and gets its own version.
            agent.metadata.version += 1
        agent.status.default_instance_id = instance_id
        await context.transaction.update(
            encode(context.kind, agent, context.relations_of(agent)), stored_version
        )
        logger.info(
            "Updated agent status with default_instance_id: agent %s -> %s",
            agent.metadata.id,
            instance_id,
        )


class AgentController(ResourceController):
    kind = AGENT

    def build_steps(self) -> Sequence[Step[ResourceContext]]:
        return (ResolveMcpServerRefsStep(self.domains),)

    def after_persist_steps(self) -> Sequence[Step[ResourceContext]]:
        return (EnsureDefaultInstanceStep(self.domains),)
