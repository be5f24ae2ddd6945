"""The steps of the pipelines that change an existing execution: recording
what its worker reports, and cancelling it (lifecycle.py has pause, resume,
terminate and recover). Like every write, each is a named list of
steps in one transaction, so crash tests cover them step by step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from stigmer.api.v1 import execution_pb2
from stigmer.errors import FailedPrecondition, NotFound
from stigmer.pipeline.context import PipelineContext
from stigmer.resources.execution_events import (
    CANCELLED,
    IN_PROGRESS,
    PAUSED,
    PENDING,
    TERMINAL_PHASES,
    WAITING_FOR_APPROVAL,
    cancel_requested_event,
    phase_event,
    phase_name,
)
from stigmer.resources.kinds import AGENT_EXECUTION
from stigmer.store.base import Transaction

Event = execution_pb2.ExecutionEvent
Update = execution_pb2.ExecutionUpdate
RecordIn = Callable[
    [Transaction, execution_pb2.AgentExecution, Sequence[Event]], Awaitable[list[Update]]
]


@dataclass(kw_only=True)
class UpdateContext(PipelineContext):
    transaction: Transaction
    execution_id: str
    events: list[Event] = field(default_factory=list)
    reason: str = ""
    execution: execution_pb2.AgentExecution | None = None
    phase_before: int = 0
    updates: list[Update] = field(default_factory=list)

    def require_execution(self) -> execution_pb2.AgentExecution:
        if self.execution is None:
            raise RuntimeError("load-execution must run first")
        return self.execution


@dataclass(frozen=True)
class LoadExecutionStep:
    name: str = "load-execution"

    async def run(self, context: UpdateContext) -> None:
        record = await context.transaction.get(AGENT_EXECUTION.name, context.execution_id)
        if record is None:
            raise NotFound(AGENT_EXECUTION.name, context.execution_id)
        context.execution = execution_pb2.AgentExecution.FromString(record.data)
        context.phase_before = context.execution.status.phase


@dataclass(frozen=True)
class RefuseEndedStep:
    """A worker's late report about an execution that already ended is refused."""

    name: str = "refuse-ended"

    async def run(self, context: UpdateContext) -> None:
        phase = context.require_execution().status.phase
        if phase in TERMINAL_PHASES:
            raise FailedPrecondition(
                f"execution {context.execution_id} already ended ({phase_name(phase)})",
                facts={"execution_id": context.execution_id},
            )


@dataclass(frozen=True)
class DropWithdrawnPauseStep:
    """A worker's PAUSED for a pause that Resume withdrew meanwhile is not
    recorded: the execution stays IN_PROGRESS, and the worker, reading
    the phase in the answer, goes on."""

    name: str = "drop-withdrawn-pause"

    async def run(self, context: UpdateContext) -> None:
        status = context.require_execution().status
        if status.is_pause_requested and status.phase == IN_PROGRESS:
            return
        context.events = [
            event
            for event in context.events
            if not (
                event.WhichOneof("change") == "phase_changed"
                and event.phase_changed.phase == PAUSED
            )
        ]


@dataclass(frozen=True)
class DecideCancelStep:
    """PENDING, PAUSED or WAITING_FOR_APPROVAL ends at once; IN_PROGRESS is
    asked to stop (its worker ends it); an ended execution stays as it is."""

    name: str = "decide-cancel"

    async def run(self, context: UpdateContext) -> None:
        status = context.require_execution().status
        if status.phase in (PENDING, PAUSED, WAITING_FOR_APPROVAL):
            # Nothing runs: it ends at once.
            context.events = [phase_event(CANCELLED, context.reason)]
        elif status.phase == IN_PROGRESS and not status.is_cancel_requested:
            context.events = [cancel_requested_event(context.reason)]


@dataclass(frozen=True)
class RecordEventsStep:
    """Applies the events, bumps the version and appends them to the log."""

    record_in: RecordIn
    name: str = "record"

    async def run(self, context: UpdateContext) -> None:
        context.updates = await self.record_in(
            context.transaction, context.require_execution(), context.events
        )
