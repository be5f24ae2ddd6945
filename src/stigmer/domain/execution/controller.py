"""AgentExecutions: one run of an agent, its conversation and its outcome.

Executions are created (never applied or updated by users) and then change
only through events: the engine records each thing the agent does as an
ExecutionEvent with the next sequence number, applied to the stored
execution and appended to its event log in one transaction (event_log.py),
then published to live subscribers. This controller creates, records and
cancels; `stream` (stream.py) replays the log to subscribers, `lifecycle`
(lifecycle.py) pauses, resumes, terminates and recovers, and the work queue
with its leases is queue.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stigmer.api.v1 import execution_pb2
from stigmer.domain.agent.client import AgentClient
from stigmer.domain.clients import ResourceReader
from stigmer.domain.execution.approvals import (
    LOCAL_DECIDER,
    ApprovalContext,
    DecideApprovalStep,
)
from stigmer.domain.execution.broker import ExecutionBroker
from stigmer.domain.execution.context import ExecutionContext
from stigmer.domain.execution.event_log import record_in
from stigmer.domain.execution.lifecycle import ExecutionLifecycle
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
from stigmer.domain.execution.stream import ExecutionStream
from stigmer.domain.execution.updates import (
    DecideCancelStep,
    DropWithdrawnPauseStep,
    LoadExecutionStep,
    RecordEventsStep,
    RefuseEndedStep,
    UpdateContext,
)
from stigmer.domain.resource_controller import ResourceController
from stigmer.domain.session.client import SessionClient
from stigmer.pipeline.context import DeleteContext
from stigmer.pipeline.envelope import Envelope, Relations
from stigmer.pipeline.framework import Pipeline
from stigmer.resources.execution_events import (
    ACTIVE_PHASES,
    IN_PROGRESS,
    PAUSED,
    PENDING,
    WAITING_FOR_APPROVAL,
)
from stigmer.resources.kinds import AGENT_EXECUTION
from stigmer.resources.principals import current_principal
from stigmer.store.base import Store

Event = execution_pb2.ExecutionEvent


@dataclass(frozen=True)
class CancelBeforeDeleteStep:
    """A running execution's work is stopped before its record goes."""

    signals: ExecutionSignals
    name: str = "cancel-running"

    async def run(self, context: DeleteContext) -> None:
        _, state = context.require_existing()
        if state.status.phase in ACTIVE_PHASES or state.status.phase == PAUSED:
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
        self.stream = ExecutionStream(store, self.broker)
        self.lifecycle = ExecutionLifecycle(store, self.broker, signals)
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
            [
                LoadExecutionStep(),
                RefuseEndedStep(),
                DropWithdrawnPauseStep(),
                RecordEventsStep(record_in),
            ],
        )
        self.cancel_pipeline = Pipeline[UpdateContext](
            "execution.cancel",
            [LoadExecutionStep(), DecideCancelStep(), RecordEventsStep(record_in)],
        )
        self.submit_approval_pipeline = Pipeline[ApprovalContext](
            "execution.submit-approval",
            [LoadExecutionStep(), DecideApprovalStep(), RecordEventsStep(record_in)],
        )

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        return (
            *super().pipelines,
            self.create_execution_pipeline,
            self.record_events_pipeline,
            self.cancel_pipeline,
            *self.lifecycle.pipelines,
            self.submit_approval_pipeline,
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
        """Cancels a PENDING or PAUSED execution at once; asks a running one to stop
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
        if context.phase_before in (IN_PROGRESS, WAITING_FOR_APPROVAL):
            # A waiting execution has no task on the embedded engine, but a
            # Temporal workflow waits for its decisions and is stopped too.
            await self.signals.cancel_running(execution_id, message)
        elif context.phase_before == PAUSED and context.updates:
            # A paused execution's work may wait somewhere (a Temporal
            # workflow waits for Resume): it has ended, so stop that too.
            await self.signals.terminate_running(execution_id, message)
        return context.require_execution()

    # -- approvals -------------------------------------------------------

    async def submit_approval(
        self, request: execution_pb2.SubmitApprovalRequest, *, decided_by: str = ""
    ) -> execution_pb2.AgentExecution:
        """Records a decision on a waiting tool call; the last one of the
        turn puts the execution back in the queue to continue.

        `decided_by`: who decided; empty: the caller's principal, else `local`.

        Raises:
            NotFound: no such execution.
            InvalidArgument: no such tool call, or edited_args the tool's
                input schema refuses.
            FailedPrecondition: the execution does not wait for this call,
                or the call was decided otherwise.
        """
        decider = decided_by or current_principal.get() or LOCAL_DECIDER
        async with self.store.transaction() as transaction:
            context = ApprovalContext(
                transaction=transaction,
                execution_id=request.execution_id,
                request=request,
                decided_by=decider,
            )
            await self.submit_approval_pipeline.run(context)
        self.broker.publish(request.execution_id, context.updates)
        execution = context.require_execution()
        if context.updates and execution.status.phase == PENDING:
            self.signals.execution_enqueued(request.execution_id)
        return execution
