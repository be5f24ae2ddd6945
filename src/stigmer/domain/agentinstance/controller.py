"""AgentInstances: an agent bound to environments. Every agent has a default
one, `<agent-slug>-default`, that runs executions created with only an agent.

`get_or_create_default` is the get-or-create of that instance: an
insert-if-absent on the (kind, org, slug) unique index inside the caller's
transaction, so concurrent first runs end with exactly one instance. An
instance that already holds the slug is adopted when it belongs to the same
agent (state left by a crash or an older version) and refused when it
belongs to another.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stigmer.api.v1 import agentinstance_pb2, meta_pb2
from stigmer.domain.clients import ResourceReader
from stigmer.domain.reference_steps import RequireRefsStep
from stigmer.domain.resource_controller import WritableResourceController
from stigmer.errors import FailedPrecondition, InvalidArgument
from stigmer.pipeline.context import WriteContext
from stigmer.pipeline.envelope import Envelope, Relations, as_envelope, decode, encode
from stigmer.pipeline.framework import Pipeline
from stigmer.pipeline.steps import (
    BuildStateStep,
    ImmutableFieldStep,
    ResolveSlugStep,
    ValidateStep,
)
from stigmer.resources.kinds import AGENT_INSTANCE
from stigmer.resources.slugs import default_instance_slug
from stigmer.store.base import Store, Transaction

logger = logging.getLogger(__name__)
MAX_NAME_LENGTH = 253


@dataclass(frozen=True)
class ResolveAgentStep:
    """spec.agent_id (or agent_ref by slug) must name an existing agent."""

    agents: ResourceReader
    name: str = "resolve-agent"

    async def run(self, context: WriteContext) -> None:
        state = context.require_state()
        spec = state.spec
        agents = self.agents
        org = state.metadata.org
        if spec.agent_ref:
            agent = await agents.require_slug(
                org, spec.agent_ref, context.transaction, field="spec.agent_ref"
            )
            if spec.agent_id and spec.agent_id != agent.metadata.id:
                raise InvalidArgument.for_field(
                    "spec.agent_id",
                    f"{spec.agent_id} is not agent {spec.agent_ref!r} ({agent.metadata.id})",
                )
            spec.agent_id = agent.metadata.id
        elif not spec.agent_id:
            raise InvalidArgument.for_field(
                "spec.agent_id", "spec.agent_id or spec.agent_ref is required"
            )
        else:
            await agents.require_id(spec.agent_id, context.transaction, field="spec.agent_id")


@dataclass(frozen=True)
class InsertIfAbsentStep:
    """Get-or-create on the unique slug; adopts only the same agent's instance."""

    agents: ResourceReader
    name: str = "insert-if-absent"

    async def run(self, context: WriteContext) -> None:
        state = context.require_state()
        record = encode(context.kind, state, context.relations_of(state))
        stored, is_inserted = await context.transaction.insert_if_absent(record)
        if is_inserted:
            logger.info(
                "Created default instance %s (%s) for agent %s",
                state.metadata.slug,
                state.metadata.id,
                state.spec.agent_id,
            )
            return
        logger.info(
            "Default instance already exists, fetching existing instance: %s", state.metadata.slug
        )
        existing = decode(context.kind, stored)
        if existing.spec.agent_id != state.spec.agent_id:
            owner = await self.agents.find(existing.spec.agent_id, context.transaction)
            whose = "which no longer exists (an orphan)" if owner is None else "another agent"
            raise FailedPrecondition(
                f"AgentInstance {stored.slug!r} ({stored.id}) belongs to agent "
                f"{existing.spec.agent_id or '(none)'}, {whose}, not to agent "
                f"{state.spec.agent_id}; it cannot be that agent's default instance. "
                f"Delete it (`stigmer delete agentinstance {stored.slug}`) and retry",
                facts={
                    "instance_id": stored.id,
                    "instance_agent_id": existing.spec.agent_id,
                    "agent_id": state.spec.agent_id,
                },
            )
        logger.info(
            "Found existing default instance %s (%s) for agent %s",
            stored.slug,
            stored.id,
            state.spec.agent_id,
        )
        context.existing_record = stored
        context.existing = context.state = existing


def _environment_refs(instance: Envelope) -> Iterable[tuple[int, str]]:
    return enumerate(instance.spec.environment_refs)


class AgentInstanceController(WritableResourceController):
    kind = AGENT_INSTANCE

    def __init__(
        self, store: Store, *, agents: ResourceReader, environments: ResourceReader
    ) -> None:
        super().__init__(
            store,
            before_persist=(
                ResolveAgentStep(agents),
                ImmutableFieldStep("spec.agent_id", "the instance belongs to {}"),
                RequireRefsStep(
                    "resolve-environments",
                    environments,
                    "spec.environment_refs[{index}]",
                    _environment_refs,
                ),
            ),
        )
        self.ensure_default_pipeline = Pipeline[WriteContext](
            "agentinstance.ensure-default",
            [
                ValidateStep(),
                ResolveSlugStep(),
                BuildStateStep(),
                ResolveAgentStep(agents),
                InsertIfAbsentStep(agents),
            ],
        )

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        return (*super().pipelines, self.ensure_default_pipeline)

    def relations_of(self, resource: Envelope) -> Relations:
        agent_id: str = resource.spec.agent_id
        return Relations(owner_id=agent_id, agent_id=agent_id)

    async def get_or_create_default(self, agent: Envelope, transaction: Transaction) -> Envelope:
        """The agent's default instance: the one its status names when that
        is still its default, else the one holding the default slug
        (adopted), else a new one. The agent's status is the caller's to
        point at it.

        Raises:
            FailedPrecondition: the default slug is held by another agent's instance.
        """
        current = agent.status.default_instance_id
        slug = default_instance_slug(agent.metadata.slug)
        if current:
            record = await transaction.get(self.kind.name, current)
            if record is not None:
                instance = decode(self.kind, record)
                if instance.spec.agent_id == agent.metadata.id and record.slug == slug:
                    return instance
            logger.warning(
                "Agent %s status.default_instance_id %s is not its default instance; repairing",
                agent.metadata.id,
                current,
            )
        given = as_envelope(
            agentinstance_pb2.AgentInstance(
                metadata=meta_pb2.ApiResourceMetadata(
                    name=f"{agent.metadata.name} default"[:MAX_NAME_LENGTH],
                    slug=slug,
                    org=agent.metadata.org,
                ),
                spec=agentinstance_pb2.AgentInstanceSpec(
                    agent_id=agent.metadata.id,
                    description=f"Default instance of agent {agent.metadata.slug}",
                ),
            )
        )
        context = await self._write(self.ensure_default_pipeline, given, transaction)
        return context.require_state()
