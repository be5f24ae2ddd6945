"""Sessions: a conversation with one agent instance; its executions share
memory. A session records which agent it belongs to, so sessions can be
listed by agent with an index instead of a join."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stigmer.domain.resource_controller import ResourceController
from stigmer.errors import InvalidArgument
from stigmer.pipeline.context import ResourceContext
from stigmer.pipeline.envelope import Envelope, Relations
from stigmer.pipeline.framework import Step
from stigmer.resources.kinds import SESSION

if TYPE_CHECKING:
    from stigmer.domain.registry import Domains


@dataclass(frozen=True)
class ResolveInstanceStep:
    domains: Domains
    name: str = "resolve-instance"

    async def run(self, context: ResourceContext) -> None:
        state = context.require_state()
        instance_id = state.spec.agent_instance_id
        existing = context.existing
        if existing is not None and existing.spec.agent_instance_id != instance_id:
            raise InvalidArgument.for_field(
                "spec.agent_instance_id",
                f"is immutable (the session belongs to {existing.spec.agent_instance_id})",
            )
        instance = await self.domains.agent_instance_client.require_id(
            instance_id, context.transaction, field="spec.agent_instance_id"
        )
        state.status.agent_id = instance.spec.agent_id


class SessionController(ResourceController):
    kind = SESSION

    def relations_of(self, resource: Envelope) -> Relations:
        instance_id: str = resource.spec.agent_instance_id
        return Relations(
            owner_id=instance_id,
            agent_instance_id=instance_id,
            agent_id=resource.status.agent_id,
        )

    def build_steps(self) -> Sequence[Step[ResourceContext]]:
        return (ResolveInstanceStep(self.domains),)
