"""The work queue: PENDING executions, taken by workers under leases.

The queue is the executions themselves, indexed by phase. A claim
(`execution.claim`) takes the oldest PENDING execution whose session is not
busy, marks it IN_PROGRESS and leases it to the worker, in one transaction.
The worker renews its lease while it runs. An execution whose worker is
gone, its lease expired or missing, is abandoned (`execution.end-abandoned`):
back to PENDING when nothing of it has happened yet, PAUSED when a pause was
asked of it, else ended. Renewing and releasing a lease are pipelines too
(`execution.renew-lease`, `execution.release-lease`): every write is one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stigmer.api.v1 import execution_pb2
from stigmer.domain.execution.broker import ExecutionBroker
from stigmer.domain.execution.event_log import record_in
from stigmer.domain.execution.signals import ExecutionSignals
from stigmer.domain.execution.updates import RecordEventsStep, UpdateContext
from stigmer.pipeline.context import PipelineContext
from stigmer.pipeline.framework import Pipeline
from stigmer.resources.execution_events import (
    ACTIVE_PHASES,
    CANCELLED,
    FAILED,
    IN_PROGRESS,
    PAUSED,
    PENDING,
    SESSION_OCCUPYING_PHASES,
    phase_event,
    phase_name,
    system_message_event,
)
from stigmer.resources.kinds import AGENT_EXECUTION
from stigmer.store.base import Lease, ListQuery, Store, Transaction

logger = logging.getLogger(__name__)
Update = execution_pb2.ExecutionUpdate
# PENDING executions a claim looks through for one whose session is free.
CLAIM_SCAN_SIZE = 50
# Expired leases reaped per pass; the next pass takes the rest.
REAP_BATCH_SIZE = 100
# IN_PROGRESS executions read per store read when listing them all.
ACTIVE_PAGE_SIZE = 100


@dataclass(kw_only=True)
class ClaimContext(PipelineContext):
    transaction: Transaction
    owner: str
    lease_seconds: float
    execution: execution_pb2.AgentExecution | None = None
    updates: list[Update] = field(default_factory=list)

    def require_execution(self) -> execution_pb2.AgentExecution:
        if self.execution is None:
            raise RuntimeError("nothing picked: pick-pending must run before this step")
        return self.execution


@dataclass(frozen=True)
class PickPendingStep:
    """The oldest PENDING execution whose session runs nothing; none: done."""

    name: str = "pick-pending"

    async def run(self, context: ClaimContext) -> None:
        transaction = context.transaction
        pending = await transaction.list(
            ListQuery(kind=AGENT_EXECUTION.name, phase=phase_name(PENDING), limit=CLAIM_SCAN_SIZE)
        )
        busy: set[str] = set()
        for record in pending:
            if record.session_id in busy:
                continue
            if await _is_session_occupied(transaction, record.session_id):
                busy.add(record.session_id)
                continue
            context.execution = execution_pb2.AgentExecution.FromString(record.data)
            return
        context.finish()


async def _is_session_occupied(transaction: Transaction, session_id: str) -> bool:
    """Whether an execution of the session runs, waits for a person or is paused."""
    for phase in SESSION_OCCUPYING_PHASES:
        occupying = await transaction.list(
            ListQuery(
                kind=AGENT_EXECUTION.name, session_id=session_id, phase=phase_name(phase), limit=1
            )
        )
        if occupying:
            return True
    return False


@dataclass(frozen=True)
class MarkInProgressStep:
    name: str = "mark-in-progress"

    async def run(self, context: ClaimContext) -> None:
        context.updates = await record_in(
            context.transaction, context.require_execution(), [phase_event(IN_PROGRESS)]
        )


@dataclass(frozen=True)
class PutLeaseStep:
    name: str = "put-lease"

    async def run(self, context: ClaimContext) -> None:
        execution_id = context.require_execution().metadata.id
        expires_at = time.time() + context.lease_seconds
        await context.transaction.put_lease(Lease(execution_id, context.owner, expires_at))


@dataclass(kw_only=True)
class LeaseContext(PipelineContext):
    transaction: Transaction
    execution_id: str
    owner: str
    lease_seconds: float = 0.0
    is_held: bool = False


@dataclass(frozen=True)
class CheckHolderStep:
    """Whether `owner` still holds the lease: another worker's (the lease
    expired and the execution was taken again) or none is left alone."""

    name: str = "check-holder"

    async def run(self, context: LeaseContext) -> None:
        lease = await context.transaction.get_lease(context.execution_id)
        context.is_held = lease is not None and lease.owner == context.owner


@dataclass(frozen=True)
class ExtendLeaseStep:
    name: str = "extend-lease"

    async def run(self, context: LeaseContext) -> None:
        if context.is_held:
            expires_at = time.time() + context.lease_seconds
            lease = Lease(context.execution_id, context.owner, expires_at)
            await context.transaction.put_lease(lease)


@dataclass(frozen=True)
class ReleaseLeaseStep:
    name: str = "release-lease"

    async def run(self, context: LeaseContext) -> None:
        if context.is_held:
            await context.transaction.delete_lease(context.execution_id)


@dataclass(frozen=True)
class DropLeaseStep:
    name: str = "drop-lease"

    async def run(self, context: UpdateContext) -> None:
        await context.transaction.delete_lease(context.execution_id)


@dataclass(frozen=True)
class LoadActiveStep:
    """The abandoned execution; gone or already ended: done."""

    name: str = "load-execution"

    async def run(self, context: UpdateContext) -> None:
        record = await context.transaction.get(AGENT_EXECUTION.name, context.execution_id)
        if record is None:
            context.finish()
            return
        execution = execution_pb2.AgentExecution.FromString(record.data)
        if execution.status.phase not in ACTIVE_PHASES:
            context.finish()
            return
        context.execution = execution
        context.phase_before = execution.status.phase


@dataclass(frozen=True)
class DecideAbandonedFateStep:
    """Re-queued when nothing happened yet, CANCELLED when a cancel was
    asked, PAUSED when a pause was (Resume continues from what it recorded),
    else FAILED with the reason."""

    name: str = "decide-fate"

    async def run(self, context: UpdateContext) -> None:
        status = context.require_execution().status
        # An AI message still empty is a model call that produced
        # nothing yet; anything else happened and must not happen twice.
        has_side_effects = bool(status.tool_calls) or any(
            m.type != execution_pb2.MESSAGE_TYPE_HUMAN
            and (m.content or m.type != execution_pb2.MESSAGE_TYPE_AI)
            for m in status.messages
        )
        reason = context.reason
        if status.is_cancel_requested:
            context.events = [phase_event(CANCELLED, f"cancelled; {reason}")]
        elif status.is_pause_requested:
            context.events = [system_message_event(reason), phase_event(PAUSED)]
        elif status.phase == IN_PROGRESS and not has_side_effects:
            context.events = [phase_event(PENDING)]
        else:
            context.events = [system_message_event(reason), phase_event(FAILED, reason)]


class ExecutionQueue:
    def __init__(self, store: Store, broker: ExecutionBroker, signals: ExecutionSignals) -> None:
        self.store = store
        self.broker = broker
        self.signals = signals
        self.claim_pipeline = Pipeline[ClaimContext](
            "execution.claim", [PickPendingStep(), MarkInProgressStep(), PutLeaseStep()]
        )
        self.end_abandoned_pipeline = Pipeline[UpdateContext](
            "execution.end-abandoned",
            [
                DropLeaseStep(),
                LoadActiveStep(),
                DecideAbandonedFateStep(),
                RecordEventsStep(record_in),
            ],
        )

        self.renew_lease_pipeline = Pipeline[LeaseContext](
            "execution.renew-lease", [CheckHolderStep(), ExtendLeaseStep()]
        )
        self.release_lease_pipeline = Pipeline[LeaseContext](
            "execution.release-lease", [CheckHolderStep(), ReleaseLeaseStep()]
        )

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        return (
            self.claim_pipeline,
            self.end_abandoned_pipeline,
            self.renew_lease_pipeline,
            self.release_lease_pipeline,
        )

    async def claim_next(
        self, owner: str, lease_seconds: float
    ) -> execution_pb2.AgentExecution | None:
        """Takes the oldest PENDING execution whose session is not busy,
        marks it IN_PROGRESS and leases it to `owner`, in one transaction."""
        async with self.store.transaction() as transaction:
            context = ClaimContext(
                transaction=transaction, owner=owner, lease_seconds=lease_seconds
            )
            await self.claim_pipeline.run(context)
        if context.execution is None:
            return None
        self.broker.publish(context.execution.metadata.id, context.updates)
        return context.execution

    async def renew_lease(self, execution_id: str, owner: str, lease_seconds: float) -> bool:
        """Extends the lease; False when the worker no longer holds it."""
        async with self.store.transaction() as transaction:
            context = LeaseContext(
                transaction=transaction,
                execution_id=execution_id,
                owner=owner,
                lease_seconds=lease_seconds,
            )
            await self.renew_lease_pipeline.run(context)
        return context.is_held

    async def release_lease(self, execution_id: str, owner: str) -> None:
        """Gives the lease up when the worker is done (usually the execution's
        end or pause took it already)."""
        async with self.store.transaction() as transaction:
            context = LeaseContext(transaction=transaction, execution_id=execution_id, owner=owner)
            await self.release_lease_pipeline.run(context)

    async def end_abandoned(self, execution_id: str, reason: str) -> None:
        """Ends an execution whose worker is gone: back to PENDING when
        nothing of it has happened yet (no model output, no tool call),
        else FAILED (CANCELLED if a cancel was asked) with the reason."""
        async with self.store.transaction() as transaction:
            context = UpdateContext(
                transaction=transaction, execution_id=execution_id, reason=reason
            )
            await self.end_abandoned_pipeline.run(context)
        if not context.updates:
            return
        logger.warning("Execution %s abandoned by its worker: %s", execution_id, reason)
        self.broker.publish(execution_id, context.updates)
        if context.require_execution().status.phase == PENDING:
            self.signals.execution_enqueued(execution_id)

    async def reap_expired_leases(self, *, is_alive: Callable[[Lease], bool]) -> int:
        """Ends or re-queues executions whose worker stopped renewing.

        `is_alive` tells the caller's own leases whose work it knows to be
        running (a stalled event loop delays renewals, not the work).
        """
        async with self.store.transaction(write=False) as transaction:
            expired = await transaction.list_expired_leases(time.time(), limit=REAP_BATCH_SIZE)
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
                    ListQuery(
                        kind=AGENT_EXECUTION.name,
                        phase=phase_name(IN_PROGRESS),
                        after_id=after,
                        limit=ACTIVE_PAGE_SIZE,
                    )
                )
                for record in page:
                    leases.append((record.id, await transaction.get_lease(record.id)))
                if len(page) < ACTIVE_PAGE_SIZE:
                    break
                after = page[-1].id
        return leases

    async def list_active_without_lease(self) -> list[str]:
        """IN_PROGRESS executions nobody holds (state from a crash before leases)."""
        return [
            execution_id for execution_id, lease in await self.list_active_leases() if not lease
        ]
