"""Sessions: a conversation with one agent instance; its executions share
memory. A session records which agent it belongs to, so sessions can be
listed by agent with an index instead of a join.

A session names its instance by id or, in a manifest, by slug
(`spec.agent_instance_ref`); the slug is resolved to the id at create and
apply. Sessions a run starts get a readable slug, `<agent-slug>-<suffix>`
(see slugs.py), so that `get ses` shows a name people can type back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stigmer.api.v1 import meta_pb2, session_pb2
from stigmer.domain.clients import ResourceReader
from stigmer.domain.resource_controller import WritableResourceController
from stigmer.domain.session.slugs import new_session_slug
from stigmer.errors import AlreadyExists, InvalidArgument
from stigmer.pipeline.context import WriteContext
from stigmer.pipeline.envelope import Envelope, Relations, as_envelope
from stigmer.pipeline.steps import ImmutableFieldStep
from stigmer.resources.kinds import SESSION
from stigmer.store.base import Store, Transaction

logger = logging.getLogger(__name__)
MAX_NAME_LENGTH = 253
# Each draw collides with odds of (sessions of the agent) / 32^5: a few
# draws only ever fail when something is wrong with the randomness.
SLUG_ATTEMPTS = 8


@dataclass(frozen=True)
class ResolveInstanceStep:
    """spec.agent_instance_id (or agent_instance_ref by slug) must name an
    existing instance; the session records that instance's agent."""

    instances: ResourceReader
    name: str = "resolve-instance"

    async def run(self, context: WriteContext) -> None:
        state = context.require_state()
        spec = state.spec
        instances = self.instances
        if spec.agent_instance_ref:
            instance = await instances.require_slug(
                state.metadata.org,
                spec.agent_instance_ref,
                context.transaction,
                field="spec.agent_instance_ref",
            )
            if spec.agent_instance_id and spec.agent_instance_id != instance.metadata.id:
                raise InvalidArgument.for_field(
                    "spec.agent_instance_id",
                    f"{spec.agent_instance_id} is not instance {spec.agent_instance_ref!r} "
                    f"({instance.metadata.id})",
                )
            spec.agent_instance_id = instance.metadata.id
        elif not spec.agent_instance_id:
            raise InvalidArgument.for_field(
                "spec.agent_instance_id",
                "spec.agent_instance_id or spec.agent_instance_ref is required",
            )
        else:
            instance = await instances.require_id(
                spec.agent_instance_id, context.transaction, field="spec.agent_instance_id"
            )
        state.status.agent_id = instance.spec.agent_id


class SessionController(WritableResourceController):
    kind = SESSION

    def __init__(self, store: Store, *, instances: ResourceReader) -> None:
        super().__init__(
            store,
            before_persist=(
                ResolveInstanceStep(instances),
                ImmutableFieldStep("spec.agent_instance_id", "the session belongs to {}"),
            ),
        )

    def relations_of(self, resource: Envelope) -> Relations:
        instance_id: str = resource.spec.agent_instance_id
        return Relations(
            owner_id=instance_id,
            agent_instance_id=instance_id,
            agent_id=resource.status.agent_id,
        )

    async def start_session(
        self, agent: Envelope, instance: Envelope, subject: str, transaction: Transaction
    ) -> Envelope:
        """A new session of `agent` on `instance`, slugged `<agent-slug>-<suffix>`.

        A drawn slug that is taken is drawn again: the insert is an
        insert-if-absent on the unique slug index, so a collision leaves the
        transaction usable.

        Raises:
            AlreadyExists: every draw collided (practically never).
        """
        for _ in range(SLUG_ATTEMPTS - 1):
            slug = new_session_slug(agent.metadata.slug)
            try:
                return await self._create_session(agent, instance, subject, slug, transaction)
            except AlreadyExists as error:
                if error.kind != SESSION.name or error.slug != slug:
                    raise
                logger.info("Session slug %s is taken; drawing another", slug)
        slug = new_session_slug(agent.metadata.slug)
        return await self._create_session(agent, instance, subject, slug, transaction)

    async def _create_session(
        self, agent: Envelope, instance: Envelope, subject: str, slug: str, transaction: Transaction
    ) -> Envelope:
        session = session_pb2.Session(
            metadata=meta_pb2.ApiResourceMetadata(
                name=f"{agent.metadata.name} session"[:MAX_NAME_LENGTH],
                slug=slug,
                org=agent.metadata.org,
            ),
            spec=session_pb2.SessionSpec(agent_instance_id=instance.metadata.id, subject=subject),
        )
        return await self.create(as_envelope(session), transaction=transaction)
