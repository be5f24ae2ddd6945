"""Where an execution runs: the session it continues, or the new session it
starts (on a named instance of the agent, or on its default instance).

A request may name its session or instance by id or by slug, and may name
the agent as well. When it does, the session or instance must be that
agent's: running the agent a user typed in another agent's conversation
would be a silent surprise, so it is a FAILED_PRECONDITION naming both
agents. Everything happens in the request's transaction: a new session, and
a default instance ensured on the way, commit with the execution or not at
all.
"""

from __future__ import annotations

from dataclasses import dataclass

from stigmer.api.v1 import execution_pb2
from stigmer.domain.agent.client import AgentClient
from stigmer.domain.clients import ResourceReader
from stigmer.domain.execution.context import ExecutionContext
from stigmer.domain.session.client import SessionClient
from stigmer.errors import FailedPrecondition, InvalidArgument
from stigmer.pipeline.envelope import Envelope
from stigmer.resources.kinds import DEFAULT_ORG
from stigmer.store.base import Transaction

SUBJECT_LENGTH = 200


def validate_placement(spec: execution_pb2.AgentExecutionSpec) -> None:
    """A request names a session, or an instance, or only an agent.

    Raises:
        InvalidArgument: none of them, or a session and an instance together.
    """
    has_session = bool(spec.session_id or spec.session_ref)
    has_instance = bool(spec.agent_instance_id or spec.agent_instance_ref)
    if has_session and has_instance:
        field = "spec.agent_instance_id" if spec.agent_instance_id else "spec.agent_instance_ref"
        raise InvalidArgument.for_field(
            field,
            "an instance starts a new session and cannot go with a session to continue; "
            "give one or the other",
        )
    if not (has_session or has_instance or spec.agent_id):
        raise InvalidArgument.for_field(
            "spec",
            "one of spec.session_id, spec.session_ref, spec.agent_instance_id, "
            "spec.agent_instance_ref or spec.agent_id is required",
        )


@dataclass(frozen=True)
class ResolveSessionStep:
    """The session the execution runs in: the one given, or a new one on the
    instance given or on the agent's default instance (ensured here)."""

    agents: AgentClient
    instances: ResourceReader
    sessions: SessionClient
    name: str = "resolve-session"

    async def run(self, context: ExecutionContext) -> None:
        spec = context.given.spec
        transaction = context.transaction
        agent = None
        if spec.agent_id:
            agent = await self.agents.require_id(spec.agent_id, transaction, field="spec.agent_id")
        org = agent.metadata.org if agent is not None else context.given.metadata.org
        org = org or DEFAULT_ORG
        if spec.session_id or spec.session_ref:
            session = await self._given_session(spec, org, transaction)
            if agent is not None and agent.metadata.id != session.status.agent_id:
                raise await self._session_of_another_agent(session, agent, transaction)
            context.session = session
            context.agent_id = session.status.agent_id
            context.instance_id = session.spec.agent_instance_id
            return
        if spec.agent_instance_id or spec.agent_instance_ref:
            instance, field = await self._given_instance(spec, org, transaction)
            if agent is None:
                agent = await self.agents.require_id(
                    instance.spec.agent_id, transaction, field=field
                )
            elif instance.spec.agent_id != agent.metadata.id:
                raise await self._instance_of_another_agent(instance, agent, transaction)
        elif agent is not None:
            instance = await self.agents.ensure_default_instance(
                agent.metadata.id, transaction, field="spec.agent_id"
            )
        else:
            raise InvalidArgument.for_field(
                "spec.agent_id", "is required without a session or an instance"
            )
        context.session = await self.sessions.start_session(
            agent, instance, spec.message[:SUBJECT_LENGTH], transaction
        )
        context.agent_id = agent.metadata.id
        context.instance_id = instance.metadata.id

    async def _given_session(
        self, spec: execution_pb2.AgentExecutionSpec, org: str, transaction: Transaction
    ) -> Envelope:
        sessions = self.sessions
        if not spec.session_ref:
            return await sessions.require_id(spec.session_id, transaction, field="spec.session_id")
        session = await sessions.require_slug(
            org, spec.session_ref, transaction, field="spec.session_ref"
        )
        if spec.session_id and spec.session_id != session.metadata.id:
            raise InvalidArgument.for_field(
                "spec.session_id",
                f"{spec.session_id} is not session {spec.session_ref!r} ({session.metadata.id})",
            )
        return session

    async def _given_instance(
        self, spec: execution_pb2.AgentExecutionSpec, org: str, transaction: Transaction
    ) -> tuple[Envelope, str]:
        instances = self.instances
        if not spec.agent_instance_ref:
            field = "spec.agent_instance_id"
            return await instances.require_id(
                spec.agent_instance_id, transaction, field=field
            ), field
        field = "spec.agent_instance_ref"
        instance = await instances.require_slug(
            org, spec.agent_instance_ref, transaction, field=field
        )
        if spec.agent_instance_id and spec.agent_instance_id != instance.metadata.id:
            raise InvalidArgument.for_field(
                "spec.agent_instance_id",
                f"{spec.agent_instance_id} is not instance {spec.agent_instance_ref!r} "
                f"({instance.metadata.id})",
            )
        return instance, field

    async def _agent_label(self, agent_id: str, transaction: Transaction) -> tuple[str, str]:
        """(slug, how to name it in a message) of an agent that may be gone."""
        owner = await self.agents.find(agent_id, transaction)
        if owner is None:
            return "", f"{agent_id or '(none)'}, which no longer exists"
        slug: str = owner.metadata.slug
        return slug, repr(slug)

    async def _session_of_another_agent(
        self, session: Envelope, agent: Envelope, transaction: Transaction
    ) -> FailedPrecondition:
        owner_id: str = session.status.agent_id
        owner_slug, owner = await self._agent_label(owner_id, transaction)
        slug = agent.metadata.slug
        return FailedPrecondition(
            f"session {session.metadata.slug!r} ({session.metadata.id}) belongs to agent "
            f"{owner}, not to agent {slug!r}: continue it with its own agent, "
            f"or start a new session of {slug!r}",
            facts={
                "session_id": session.metadata.id,
                "session_slug": session.metadata.slug,
                "session_agent_id": owner_id,
                "session_agent_slug": owner_slug,
                "agent_id": agent.metadata.id,
                "agent_slug": slug,
            },
        )

    async def _instance_of_another_agent(
        self, instance: Envelope, agent: Envelope, transaction: Transaction
    ) -> FailedPrecondition:
        owner_id: str = instance.spec.agent_id
        owner_slug, owner = await self._agent_label(owner_id, transaction)
        slug = agent.metadata.slug
        return FailedPrecondition(
            f"AgentInstance {instance.metadata.slug!r} ({instance.metadata.id}) belongs to "
            f"agent {owner}, not to agent {slug!r}: run its own agent on it, or pick an "
            f"instance of {slug!r}",
            facts={
                "instance_id": instance.metadata.id,
                "instance_slug": instance.metadata.slug,
                "instance_agent_id": owner_id,
                "instance_agent_slug": owner_slug,
                "agent_id": agent.metadata.id,
                "agent_slug": slug,
            },
        )
