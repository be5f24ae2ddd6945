"""The steps of an execution's create pipeline.

validate → idempotency → resolve session (sessions.py: the session given,
or a new one on the instance given or on the agent's default instance,
ensured on the way) → busy-session policy → build (PENDING, the HUMAN
message) → persist. All in one transaction: a failure anywhere leaves no
instance, session or execution.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from stigmer.api.v1 import execution_pb2
from stigmer.domain.execution.context import ExecutionContext
from stigmer.domain.execution.sessions import validate_placement
from stigmer.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from stigmer.pipeline.envelope import Envelope, Relations, as_envelope, encode, now, touch_audit
from stigmer.resources.execution_events import PENDING, SESSION_OCCUPYING_PHASES, phase_name
from stigmer.resources.ids import new_id
from stigmer.resources.kinds import AGENT_EXECUTION, API_VERSION, DEFAULT_ORG
from stigmer.resources.validation import validate_message
from stigmer.store.base import ListQuery

REQUEST_HASH_ANNOTATION = "stigmer.ai/request-hash"
_EXECUTION_ID = re.compile(r"^aex-[0-9a-z]{26}$")


@dataclass(frozen=True)
class ValidateExecutionStep:
    name: str = "validate"

    async def run(self, context: ExecutionContext) -> None:
        given = context.given
        validate_message(given)
        if given.kind and given.kind != AGENT_EXECUTION.name:
            raise InvalidArgument.for_field("kind", f"expected AgentExecution, got {given.kind!r}")
        validate_placement(given.spec)
        if not given.spec.message.strip():
            raise InvalidArgument.for_field("spec.message", "must not be empty")
        if given.metadata.id and not _EXECUTION_ID.match(given.metadata.id):
            raise InvalidArgument.for_field(
                "metadata.id", "a client-chosen id must look like aex-<lowercase ULID>"
            )


def request_hash(given: execution_pb2.AgentExecution) -> str:
    return hashlib.sha256(given.spec.SerializeToString(deterministic=True)).hexdigest()


@dataclass(frozen=True)
class IdempotencyStep:
    """A repeated request (same idempotency key or client-chosen id) returns
    the original execution; the same key with another request is taken."""

    name: str = "idempotency"

    async def run(self, context: ExecutionContext) -> None:
        given = context.given
        key = given.spec.idempotency_key
        org = given.metadata.org or DEFAULT_ORG
        if key:
            context.slug = "key-" + hashlib.sha256(key.encode()).hexdigest()[:40]
        elif given.metadata.id:
            context.slug = given.metadata.id
        else:
            return
        context.request_hash = request_hash(given)
        record = await context.transaction.get_by_slug(AGENT_EXECUTION.name, org, context.slug)
        if record is None and given.metadata.id:
            record = await context.transaction.get(AGENT_EXECUTION.name, given.metadata.id)
        if record is None:
            return
        existing = execution_pb2.AgentExecution.FromString(record.data)
        if existing.metadata.annotations.get(REQUEST_HASH_ANNOTATION) != context.request_hash:
            raise AlreadyExists(
                AGENT_EXECUTION.name,
                record.slug,
                record.id,
                org=org,
                message=(
                    f"execution {record.id} was created with this idempotency key or id "
                    "for a different request"
                ),
            )
        context.replayed = existing
        context.finish()


@dataclass(frozen=True)
class BusySessionStep:
    """One active execution per session: queue behind it, or refuse."""

    name: str = "check-busy-session"

    async def run(self, context: ExecutionContext) -> None:
        if context.given.spec.on_busy_session != execution_pb2.BUSY_SESSION_POLICY_REJECT:
            return
        session_id = context.require_session().metadata.id
        for phase in (*SESSION_OCCUPYING_PHASES, PENDING):
            active = await context.transaction.list(
                ListQuery(
                    kind=AGENT_EXECUTION.name,
                    session_id=session_id,
                    phase=phase_name(phase),
                    limit=1,
                )
            )
            if active:
                raise FailedPrecondition(
                    f"session {session_id} is busy with execution {active[0].id} "
                    f"({phase_name(phase)}); retry when it ends, or queue behind it",
                    facts={"session_id": session_id, "active_execution_id": active[0].id},
                )


@dataclass(frozen=True)
class BuildExecutionStep:
    name: str = "build-state"

    async def run(self, context: ExecutionContext) -> None:
        session = context.require_session()
        state = execution_pb2.AgentExecution()
        state.CopyFrom(context.given)
        state.api_version = API_VERSION
        state.kind = AGENT_EXECUTION.name
        metadata = state.metadata
        metadata.id = metadata.id or new_id(AGENT_EXECUTION.prefix)
        metadata.org = session.metadata.org
        metadata.slug = context.slug or metadata.id
        metadata.name = metadata.name or metadata.id
        metadata.version = 1
        if context.request_hash:
            metadata.annotations[REQUEST_HASH_ANNOTATION] = context.request_hash
        # The stored spec names its session by id only (see the proto).
        state.spec.session_id = session.metadata.id
        state.spec.agent_id = context.agent_id
        for field in ("session_ref", "agent_instance_id", "agent_instance_ref"):
            state.spec.ClearField(field)
        state.ClearField("status")
        status = state.status
        status.phase = PENDING
        status.session_id = session.metadata.id
        status.agent_id = context.agent_id
        status.agent_instance_id = context.instance_id
        human = status.messages.add(
            type=execution_pb2.MESSAGE_TYPE_HUMAN, content=state.spec.message
        )
        human.timestamp.FromDatetime(now())
        touch_audit(as_envelope(state), created=True)
        context.state = state


@dataclass(frozen=True)
class PersistExecutionStep:
    name: str = "persist"

    async def run(self, context: ExecutionContext) -> None:
        if context.state is None:
            raise RuntimeError("no execution built: build-state must run before this step")
        state = as_envelope(context.state)
        await context.transaction.insert(encode(AGENT_EXECUTION, state, execution_relations(state)))


def execution_relations(resource: Envelope) -> Relations:
    status = resource.status
    return Relations(
        owner_id=status.session_id,
        agent_id=status.agent_id,
        agent_instance_id=status.agent_instance_id,
        session_id=status.session_id,
        phase=phase_name(status.phase),
    )
