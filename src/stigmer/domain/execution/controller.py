"""AgentExecutions: one run of an agent, its conversation and its outcome.

Executions are created (never applied or updated by users) and then change
only through events: the engine records each thing the agent does as an
ExecutionEvent with the next sequence number, applied to the stored
execution and appended to its event log in one transaction, then published
to live subscribers. `subscribe` replays the log from any sequence, so a
client that reconnects misses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stigmer.api.v1 import execution_pb2
from stigmer.domain.agent.client import AgentClient
from stigmer.domain.clients import ResourceReader
from stigmer.domain.execution.broker import ExecutionBroker
from stigmer.domain.execution.context import ExecutionContext
from stigmer.domain.execution.sessions import ResolveSessionStep
from stigmer.domain.execution.signals import ExecutionSignals
from stigmer.domain.execution.steps import (
    BuildExecutionStep,
    BusySessionStep,
    IdempotencyStep,
    PersistExecutionStep,
    ValidateExecutionStep,
    execution_relations,
)
from stigmer.domain.execution.updates import (
    DecideCancelStep,
    LoadExecutionStep,
    RecordEventsStep,
    RefuseEndedStep,
    UpdateContext,
    phase_event,
)
from stigmer.domain.resource_controller import ResourceController
from stigmer.domain.session.client import SessionClient
from stigmer.errors import NotFound
from stigmer.pipeline.context import DeleteContext
from stigmer.pipeline.envelope import Envelope, Relations, as_envelope, encode, now
from stigmer.pipeline.framework import Pipeline
from stigmer.resources.execution_events import (
    ACTIVE_PHASES,
    CANCELLED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    TERMINAL_PHASES,
    apply_event,
    phase_name,
)
from stigmer.resources.kinds import AGENT_EXECUTION
from stigmer.store.base import Lease, ListQuery, Store, Transaction

logger = logging.getLogger(__name__)
Update = execution_pb2.ExecutionUpdate
Event = execution_pb2.ExecutionEvent


def system_message_event(text: str) -> Event:
    event = Event(
        message_added=execution_pb2.ExecutionMessage(
            type=execution_pb2.MESSAGE_TYPE_SYSTEM, content=text
        )
    )
    event.at.FromDatetime(now())
    event.message_added.timestamp.CopyFrom(event.at)
    return event


def is_terminal_update(update: Update) -> bool:
    event = update.event
    if event.WhichOneof("change") == "phase_changed":
        return event.phase_changed.phase in TERMINAL_PHASES
    if event.WhichOneof("change") == "snapshot":
        return event.snapshot.status.phase in TERMINAL_PHASES
    return False


@dataclass(frozen=True)
class CancelBeforeDeleteStep:
    """A running execution's work is stopped before its record goes."""

    signals: ExecutionSignals
    name: str = "cancel-running"

    async def run(self, context: DeleteContext) -> None:
        _, state = context.require_existing()
        if state.status.phase in ACTIVE_PHASES:
            await self.signals.cancel_running(state.metadata.id, "the execution was deleted")


class ExecutionController(ResourceController):
    kind = AGENT_EXECUTION

    def __init__(
        self,
        store: Store,
        signals: ExecutionSignals,
        *,
        agents: AgentClient,
        instances: ResourceReader,
        sessions: SessionClient,
    ) -> None:
        super().__init__(store, before_delete=(CancelBeforeDeleteStep(signals),))
        self.broker = ExecutionBroker()
        self.signals = signals
        self.create_execution_pipeline = Pipeline[ExecutionContext](
            "execution.create",
            [
                ValidateExecutionStep(),
                IdempotencyStep(),
                ResolveSessionStep(agents, instances, sessions),
                BusySessionStep(),
                BuildExecutionStep(),
                PersistExecutionStep(),
            ],
        )
        self.record_events_pipeline = Pipeline[UpdateContext](
            "execution.record-events",
            [LoadExecutionStep(), RefuseEndedStep(), RecordEventsStep(self.record_in)],
        )
        self.cancel_pipeline = Pipeline[UpdateContext](
            "execution.cancel",
            [LoadExecutionStep(), DecideCancelStep(), RecordEventsStep(self.record_in)],
        )

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        return (
            *super().pipelines,
            self.create_execution_pipeline,
            self.record_events_pipeline,
            self.cancel_pipeline,
        )

    def relations_of(self, resource: Envelope) -> Relations:
        return execution_relations(resource)

    # -- create ----------------------------------------------------------

    async def create_execution(
        self, given: execution_pb2.AgentExecution
    ) -> tuple[execution_pb2.AgentExecution, bool]:
        """Creates a PENDING execution (or returns the one an idempotent
        retry names); returns (execution, created?).

        Raises:
            InvalidArgument, NotFound: bad request or missing agent, session
                or instance.
            AlreadyExists: the idempotency key was used for another request.
            FailedPrecondition: the session or instance is another agent's
                than the one named, or the session is busy and the request
                said reject.
        """
        async with self.store.transaction() as transaction:
            context = ExecutionContext(transaction=transaction, given=given)
            await self.create_execution_pipeline.run(context)
        if context.replayed is not None:
            return context.replayed, False
        if context.state is None:
            raise RuntimeError("execution.create ended without a state")
        self.signals.execution_enqueued(context.state.metadata.id)
        return context.state, True

    # -- events ----------------------------------------------------------

    async def _load(
        self, transaction: Transaction, execution_id: str
    ) -> execution_pb2.AgentExecution:
        record = await transaction.get(self.kind.name, execution_id)
        if record is None:
            raise NotFound(self.kind.name, execution_id)
        return execution_pb2.AgentExecution.FromString(record.data)

    async def record_in(
        self,
        transaction: Transaction,
        execution: execution_pb2.AgentExecution,
        events: Sequence[Event],
    ) -> list[Update]:
        """Applies events to a loaded execution and stores both, in `transaction`."""
        if not events:
            return []
        previous_version = execution.metadata.version
        # Watchers see what a list shows change (phase, message count), not
        # every streamed text delta: those would flood the change log.
        shown_before = (execution.status.phase, len(execution.status.messages))
        updates = []
        for event in events:
            sequence = execution.status.last_sequence + 1
            apply_event(execution, event, sequence)
            updates.append(Update(sequence=sequence, event=event))
        execution.metadata.version = previous_version + 1
        execution.status.audit.updated_at.FromDatetime(now())
        envelope = as_envelope(execution)
        shown_after = (execution.status.phase, len(execution.status.messages))
        await transaction.update(
            encode(self.kind, envelope, execution_relations(envelope)),
            previous_version,
            is_change_logged=shown_after != shown_before,
        )
        await transaction.append_events(
            execution.metadata.id,
            [(u.sequence, u.event.SerializeToString(deterministic=True)) for u in updates],
        )
        if execution.status.phase in TERMINAL_PHASES:
            # An ended execution needs no worker: its lease goes in the same
            # write, whichever engine (or a worker on another machine) ended it.
            await transaction.delete_lease(execution.metadata.id)
        return updates

    async def record_events(
        self, execution_id: str, events: Sequence[Event]
    ) -> execution_pb2.AgentExecution:
        """Records what a worker reports about a running execution.

        Raises:
            NotFound: the execution is gone (deleted).
            FailedPrecondition: it has already ended.
        """
        async with self.store.transaction() as transaction:
            context = UpdateContext(
                transaction=transaction, execution_id=execution_id, events=list(events)
            )
            await self.record_events_pipeline.run(context)
        self.broker.publish(execution_id, context.updates)
        return context.require_execution()

    # -- cancel ----------------------------------------------------------

    async def cancel(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """Cancels a PENDING execution at once; asks a running one to stop
        (its worker ends it CANCELLED). Cancelling an ended one changes nothing.

        Raises:
            NotFound: no such execution.
        """
        message = reason or "cancelled by request"
        async with self.store.transaction() as transaction:
            context = UpdateContext(
                transaction=transaction, execution_id=execution_id, reason=message
            )
            await self.cancel_pipeline.run(context)
        self.broker.publish(execution_id, context.updates)
        if context.phase_before == IN_PROGRESS:
            await self.signals.cancel_running(execution_id, message)
        return context.require_execution()

    # -- subscribe -------------------------------------------------------

    async def subscribe(self, execution_id: str, after_sequence: int = 0) -> AsyncIterator[Update]:
        """The current state (or the updates after `after_sequence`), then
        every update in order, until the execution ends.

        Raises:
            NotFound: no such execution.
        """
        queue = self.broker.subscribe(execution_id)
        try:
            async with self.store.transaction(write=False) as transaction:
                execution = await self._load(transaction, execution_id)
            if after_sequence <= 0:
                last = execution.status.last_sequence
                yield Update(sequence=last, event=Event(snapshot=execution))
            else:
                last = after_sequence
                async for update in self._replay(execution_id, last):
                    yield update
                    last = update.sequence
            if execution.status.phase in TERMINAL_PHASES and last >= execution.status.last_sequence:
                return
            while True:
                update = await queue.get()
                if update.sequence <= last:
                    continue
                if update.sequence > last + 1:
                    # Something was published before we listened, or the
                    # log got ahead of the broker: read the gap back.
                    async for missed in self._replay(execution_id, last, until=update.sequence):
                        yield missed
                        last = missed.sequence
                        if is_terminal_update(missed):
                            return
                yield update
                last = update.sequence
                if is_terminal_update(update):
                    return
        finally:
            self.broker.unsubscribe(execution_id, queue)

    async def _replay(
        self, execution_id: str, after: int, *, until: int | None = None
    ) -> AsyncIterator[Update]:
        while True:
            async with self.store.transaction(write=False) as transaction:
                page = await transaction.list_events(execution_id, after, limit=500)
            for sequence, data in page:
                if until is not None and sequence >= until:
                    return
                yield Update(sequence=sequence, event=Event.FromString(data))
                after = sequence
            if len(page) < 500:
                return

    # -- the engine's side ----------------------------------------------

    async def claim_next(
        self, owner: str, lease_seconds: float
    ) -> execution_pb2.AgentExecution | None:
        """Takes the oldest PENDING execution whose session is not busy,
        marks it IN_PROGRESS and leases it to `owner`, in one transaction."""
        async with self.store.transaction() as transaction:
            pending = await transaction.list(
                ListQuery(kind=self.kind.name, phase=phase_name(PENDING), limit=50)
            )
            busy: set[str] = set()
            for record in pending:
                if record.session_id in busy:
                    continue
                active = await transaction.list(
                    ListQuery(
                        kind=self.kind.name,
                        session_id=record.session_id,
                        phase=phase_name(IN_PROGRESS),
                        limit=1,
                    )
                )
                if active:
                    busy.add(record.session_id)
                    continue
                execution = execution_pb2.AgentExecution.FromString(record.data)
                updates = await self.record_in(transaction, execution, [phase_event(IN_PROGRESS)])
                await transaction.put_lease(Lease(record.id, owner, time.time() + lease_seconds))
                break
            else:
                return None
        self.broker.publish(execution.metadata.id, updates)
        return execution

    async def renew_lease(self, execution_id: str, owner: str, lease_seconds: float) -> bool:
        """Extends the lease; False when the worker no longer holds it."""
        async with self.store.transaction() as transaction:
            lease = await transaction.get_lease(execution_id)
            if lease is None or lease.owner != owner:
                return False
            await transaction.put_lease(Lease(execution_id, owner, time.time() + lease_seconds))
            return True

    async def release_lease(self, execution_id: str, owner: str) -> None:
        async with self.store.transaction() as transaction:
            lease = await transaction.get_lease(execution_id)
            if lease is not None and lease.owner == owner:
                await transaction.delete_lease(execution_id)

    async def end_abandoned(self, execution_id: str, reason: str) -> None:
        """Ends an execution whose worker is gone: back to PENDING when
        nothing of it has happened yet (no model output, no tool call),
        else FAILED (CANCELLED if a cancel was asked) with the reason."""
        async with self.store.transaction() as transaction:
            await transaction.delete_lease(execution_id)
            record = await transaction.get(self.kind.name, execution_id)
            if record is None:
                return
            execution = execution_pb2.AgentExecution.FromString(record.data)
            if execution.status.phase not in ACTIVE_PHASES:
                return
            # An AI message still empty is a model call that produced
            # nothing yet; anything else happened and must not happen twice.
            has_side_effects = bool(execution.status.tool_calls) or any(
                m.type != execution_pb2.MESSAGE_TYPE_HUMAN
                and (m.content or m.type != execution_pb2.MESSAGE_TYPE_AI)
                for m in execution.status.messages
            )
            if execution.status.is_cancel_requested:
                events = [phase_event(CANCELLED, f"cancelled; {reason}")]
            elif execution.status.phase == IN_PROGRESS and not has_side_effects:
                events = [phase_event(PENDING)]
            else:
                events = [system_message_event(reason), phase_event(FAILED, reason)]
            updates = await self.record_in(transaction, execution, events)
        logger.warning("Execution %s abandoned by its worker: %s", execution_id, reason)
        self.broker.publish(execution_id, updates)
        if updates and execution.status.phase == PENDING:
            self.signals.execution_enqueued(execution_id)

    async def reap_expired_leases(self, *, is_alive: Callable[[Lease], bool]) -> int:
        """Ends or re-queues executions whose worker stopped renewing.

        `is_alive` tells the caller's own leases whose work it knows to be
        running (a stalled event loop delays renewals, not the work).
        """
        async with self.store.transaction(write=False) as transaction:
            expired = await transaction.list_expired_leases(time.time(), limit=100)
        expired = [lease for lease in expired if not is_alive(lease)]
        for lease in expired:
            moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lease.expires_at))
            await self.end_abandoned(
                lease.resource_id,
                f"worker lost: {lease.owner} stopped renewing its lease (expired {moment})",
            )
        return len(expired)

    async def list_active_leases(self) -> list[tuple[str, Lease | None]]:
        """Every IN_PROGRESS execution with its lease (None: nobody holds it)."""
        leases: list[tuple[str, Lease | None]] = []
        async with self.store.transaction(write=False) as transaction:
            after = ""
            while True:
                page = await transaction.list(
                    ListQuery(kind=self.kind.name, phase=phase_name(IN_PROGRESS), after_id=after)
                )
                for record in page:
                    leases.append((record.id, await transaction.get_lease(record.id)))
                if len(page) < 100:
                    break
                after = page[-1].id
        return leases

    async def list_active_without_lease(self) -> list[str]:
        """IN_PROGRESS executions nobody holds (state from a crash before leases)."""
        return [
            execution_id for execution_id, lease in await self.list_active_leases() if not lease
        ]
