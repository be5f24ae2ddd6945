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

from stigmer.api.v1 import meta_pb2
from stigmer.domain.resource_controller import ResourceController
from stigmer.errors import NotFound
from stigmer.pipeline.context import ResourceContext
from stigmer.pipeline.envelope import Envelope, decode, encode
from stigmer.pipeline.framework import Pipeline, Step
from stigmer.resources.kinds import AGENT
from stigmer.store.base import Store, Transaction

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


@dataclass(frozen=True)
class LoadAgentStep:
    """The agent a request names by id (context.target_id), as the state the
    next steps repair."""

    name: str = "load-agent"

    async def run(self, context: ResourceContext) -> None:
        record = await context.transaction.get(AGENT.name, context.target_id)
        if record is None:
            raise NotFound(AGENT.name, context.target_id, field=context.target_field)
        context.existing_record = record
        context.existing = context.state = decode(AGENT, record)
        # Nothing of the agent's spec changes: a status repair is its own write.
        context.outcome = meta_pb2.APPLY_OUTCOME_UNCHANGED


class AgentController(ResourceController):
    kind = AGENT

    def __init__(self, store: Store, domains: Domains) -> None:
        super().__init__(store, domains)
        self.ensure_default_instance_pipeline = Pipeline[ResourceContext](
            "agent.ensure-default-instance",
            [LoadAgentStep(), EnsureDefaultInstanceStep(domains)],
        )

    async def ensure_default_instance(
        self, agent_id: str, transaction: Transaction, *, field: str
    ) -> Envelope:
        """The agent's default instance, created or adopted, with the agent's
        status pointing at it (repaired in this transaction if it did not).

        Raises:
            NotFound: no agent with this id (naming `field`).
            FailedPrecondition: another agent's instance holds the default slug.
        """
        context = ResourceContext(
            self.kind, transaction, self.relations_of, target_id=agent_id, target_field=field
        )
        await self.ensure_default_instance_pipeline.run(context)
        instance_id = context.require_state().status.default_instance_id
        return await self.domains.agent_instance_client.get(instance_id, transaction)

    def build_steps(self) -> Sequence[Step[ResourceContext]]:
        return (ResolveMcpServerRefsStep(self.domains),)

    def after_persist_steps(self) -> Sequence[Step[ResourceContext]]:
        return (EnsureDefaultInstanceStep(self.domains),)
