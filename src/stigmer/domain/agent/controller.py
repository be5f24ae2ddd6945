"""Agents. Creating or applying an agent also ensures its default instance
and records it in `status.default_instance_id`, in the same transaction as
the agent itself: there is no moment at which the agent exists without it.

Every write that touches an agent re-checks the pointer, so state left
broken by a crash, an older version or a manual edit heals on the next
request instead of failing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stigmer.api.v1 import meta_pb2
from stigmer.domain.agentinstance.client import AgentInstanceClient
from stigmer.domain.clients import ResourceReader
from stigmer.domain.reference_steps import RequireRefsStep
from stigmer.domain.resource_controller import WritableResourceController
from stigmer.domain.skill.references import RequireSkillRefsStep
from stigmer.errors import NotFound
from stigmer.pipeline.context import StateContext, TargetContext
from stigmer.pipeline.envelope import Envelope, decode, encode
from stigmer.pipeline.framework import Pipeline
from stigmer.resources.kinds import AGENT
from stigmer.store.base import Store, Transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnsureDefaultInstanceStep:
    """Get-or-create the default instance and point the agent's status at it."""

    instances: AgentInstanceClient
    name: str = "ensure-default-instance"

    async def run(self, context: StateContext) -> None:
        agent = context.require_state()
        instance = await self.instances.get_or_create_default(agent, context.transaction)
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

    async def run(self, context: TargetContext) -> None:
        record = await context.transaction.get(AGENT.name, context.target_id)
        if record is None:
            raise NotFound(AGENT.name, context.target_id, field=context.target_field)
        context.existing_record = record
        context.existing = context.state = decode(AGENT, record)
        # Nothing of the agent's spec changes: a status repair is its own write.
        context.outcome = meta_pb2.APPLY_OUTCOME_UNCHANGED


def _mcp_server_refs(agent: Envelope) -> Iterable[tuple[int, str]]:
    return ((index, usage.ref) for index, usage in enumerate(agent.spec.mcp_servers) if usage.ref)


class AgentController(WritableResourceController):
    kind = AGENT

    def __init__(
        self,
        store: Store,
        *,
        mcp_servers: ResourceReader,
        skills: ResourceReader,
        instances: AgentInstanceClient,
    ) -> None:
        ensure_default = EnsureDefaultInstanceStep(instances)
        super().__init__(
            store,
            before_persist=(
                RequireRefsStep(
                    "resolve-mcp-servers",
                    mcp_servers,
                    "spec.mcp_servers[{index}].ref",
                    _mcp_server_refs,
                ),
                RequireSkillRefsStep(skills),
            ),
            after_persist=(ensure_default,),
        )
        self._instances = instances
        self.ensure_default_instance_pipeline = Pipeline[TargetContext](
            "agent.ensure-default-instance", [LoadAgentStep(), ensure_default]
        )

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        return (*super().pipelines, self.ensure_default_instance_pipeline)

    async def ensure_default_instance(
        self, agent_id: str, transaction: Transaction, *, field: str
    ) -> Envelope:
        """The agent's default instance, created or adopted, with the agent's
        status pointing at it (repaired in this transaction if it did not).

        Raises:
            NotFound: no agent with this id (naming `field`).
            FailedPrecondition: another agent's instance holds the default slug.
        """
        context = TargetContext(
            kind=self.kind,
            transaction=transaction,
            relations_of=self.relations_of,
            target_id=agent_id,
            target_field=field,
        )
        await self.ensure_default_instance_pipeline.run(context)
        instance_id = context.require_state().status.default_instance_id
        return await self._instances.get(instance_id, transaction)
