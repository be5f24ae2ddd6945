"""A person's control over an execution once it exists: pause, resume,
terminate and recover.

Each is a named pipeline (load, decide, record) in one transaction, like
every write, so the crash matrix covers it step by step. The decision is
made on the stored phase alone, which makes every request idempotent: asked
again once it took effect, it records nothing and returns the execution as
it is. From a phase it cannot leave, it is FAILED_PRECONDITION naming that
phase.

- Pause: a PENDING execution is PAUSED at once. A running one records the
  request (`pause_requested`); its engine stops at the next point between a
  model call and a tool call and reports PAUSED, which drops its lease, so
  a paused execution holds no worker slot and is never reaped as lost.
- Resume: a PAUSED execution goes back to the queue (PENDING); the worker
  that claims it continues from its recorded conversation. A pause asked of
  a running execution and not yet honoured is withdrawn.
- Terminate: any phase that has not ended becomes TERMINATED in this
  transaction, open tool calls INTERRUPTED; only then is the engine told to
  stop the work, whose later reports are refused as ended. Unlike cancel it
  waits for nothing.
- Settle open tool calls (`stigmer repair`): an ended execution's tool calls
  still PENDING, RUNNING or WAITING_APPROVAL (state left by an older version
  or a manual edit) become INTERRUPTED.
- Recover: a FAILED execution goes back to the queue with an attempt
  (`recovered`, keeping the error it had failed with); the worker that
  claims it continues from the recorded conversation, and tool calls that
  completed are not run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from stigmer.api.v1 import execution_pb2
from stigmer.domain.execution.broker import ExecutionBroker
from stigmer.domain.execution.event_log import record_in
from stigmer.domain.execution.signals import ExecutionSignals
from stigmer.domain.execution.updates import LoadExecutionStep, RecordEventsStep, UpdateContext
from stigmer.errors import FailedPrecondition
from stigmer.pipeline.framework import Pipeline
from stigmer.resources.execution_events import (
    ACTIVE_PHASES,
    FAILED,
    IN_PROGRESS,
    OPEN_TOOL_CALL_STATES,
    PAUSED,
    PENDING,
    TERMINAL_PHASES,
    TERMINATED,
    pause_requested_event,
    phase_event,
    phase_name,
    recovered_event,
    resumed_event,
    tool_call_event,
)
from stigmer.resources.principals import current_principal
from stigmer.store.base import Store

logger = logging.getLogger(__name__)
# Who recovers an execution until the server authenticates its callers.
LOCAL_PRINCIPAL = "local"


def _cannot(action: str, context: UpdateContext, allowed: str) -> FailedPrecondition:
    phase = phase_name(context.require_execution().status.phase)
    return FailedPrecondition(
        f"cannot {action} execution {context.execution_id}: it is {phase}; "
        f"only {allowed} can be {action}d",
        facts={"execution_id": context.execution_id, "phase": phase},
    )


@dataclass(frozen=True)
class DecidePauseStep:
    name: str = "decide-pause"

    async def run(self, context: UpdateContext) -> None:
        status = context.require_execution().status
        if status.phase == PAUSED or (status.phase == IN_PROGRESS and status.is_pause_requested):
            return
        if status.phase == PENDING:
            context.events = [pause_requested_event(context.reason), phase_event(PAUSED)]
        elif status.phase == IN_PROGRESS:
            context.events = [pause_requested_event(context.reason)]
        else:
            raise _cannot("pause", context, "a PENDING or IN_PROGRESS execution")


@dataclass(frozen=True)
class DecideResumeStep:
    name: str = "decide-resume"

    async def run(self, context: UpdateContext) -> None:
        status = context.require_execution().status
        if status.phase == PAUSED:
            context.events = [resumed_event(context.reason), phase_event(PENDING)]
        elif status.phase in ACTIVE_PHASES:
            if status.is_pause_requested:
                context.events = [resumed_event(context.reason)]
        else:
            raise _cannot("resume", context, "a PAUSED execution")


@dataclass(frozen=True)
class DecideTerminateStep:
    name: str = "decide-terminate"

    async def run(self, context: UpdateContext) -> None:
        phase = context.require_execution().status.phase
        if phase == TERMINATED:
            return
        if phase in TERMINAL_PHASES:
            raise _cannot("terminate", context, "an execution that has not ended")
        context.events = [phase_event(TERMINATED, context.reason)]


@dataclass(frozen=True)
class DecideRecoverStep:
    name: str = "decide-recover"

    async def run(self, context: UpdateContext) -> None:
        status = context.require_execution().status
        if status.phase == FAILED:
            context.events = [
                recovered_event(status.error, current_principal.get() or LOCAL_PRINCIPAL),
                phase_event(PENDING),
            ]
        elif status.phase in ACTIVE_PHASES and status.attempts:
            return  # recovered already, and going on
        else:
            raise _cannot("recover", context, "a FAILED execution")


@dataclass(frozen=True)
class SettleOpenToolCallsStep:
    """An ended execution's open tool calls become INTERRUPTED; one that
    has not ended is left to its work."""

    name: str = "settle-open-tool-calls"

    async def run(self, context: UpdateContext) -> None:
        status = context.require_execution().status
        if status.phase not in TERMINAL_PHASES:
            return
        moment = status.completed_at if status.HasField("completed_at") else None
        for call in status.tool_calls:
            if call.status in OPEN_TOOL_CALL_STATES:
                settled = execution_pb2.ToolCall()
                settled.CopyFrom(call)
                settled.status = execution_pb2.TOOL_CALL_STATUS_INTERRUPTED
                event = tool_call_event(settled)
                settled_call = event.tool_call_updated
                settled_call.completed_at.CopyFrom(moment or event.at)
                context.events.append(event)


def _pipeline(name: str, decide: Any) -> Pipeline[UpdateContext]:
    return Pipeline[UpdateContext](name, [LoadExecutionStep(), decide, RecordEventsStep(record_in)])


class ExecutionLifecycle:
    def __init__(self, store: Store, broker: ExecutionBroker, signals: ExecutionSignals) -> None:
        self.store = store
        self.broker = broker
        self.signals = signals
        self.pause_pipeline = _pipeline("execution.pause", DecidePauseStep())
        self.resume_pipeline = _pipeline("execution.resume", DecideResumeStep())
        self.terminate_pipeline = _pipeline("execution.terminate", DecideTerminateStep())
        self.recover_pipeline = _pipeline("execution.recover", DecideRecoverStep())
        self.settle_pipeline = _pipeline(
            "execution.settle-open-tool-calls", SettleOpenToolCallsStep()
        )

    @property
    def pipelines(self) -> tuple[Pipeline[Any], ...]:
        return (
            self.pause_pipeline,
            self.resume_pipeline,
            self.terminate_pipeline,
            self.recover_pipeline,
            self.settle_pipeline,
        )

    async def _run(
        self, pipeline: Pipeline[UpdateContext], execution_id: str, reason: str
    ) -> UpdateContext:
        async with self.store.transaction() as transaction:
            context = UpdateContext(
                transaction=transaction, execution_id=execution_id, reason=reason
            )
            await pipeline.run(context)
        self.broker.publish(execution_id, context.updates)
        return context

    async def pause(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """Pauses a PENDING execution at once, asks a running one to pause.

        Raises:
            NotFound: no such execution.
            FailedPrecondition: it has ended (or waits in a phase pause cannot leave).
        """
        context = await self._run(self.pause_pipeline, execution_id, reason or "paused by request")
        return context.require_execution()

    async def resume(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """Puts a PAUSED execution back in the queue, or withdraws a pause
        not yet honoured.

        Raises:
            NotFound: no such execution.
            FailedPrecondition: it has ended.
        """
        context = await self._run(
            self.resume_pipeline, execution_id, reason or "resumed by request"
        )
        execution = context.require_execution()
        if context.updates and execution.status.phase == PENDING:
            self.signals.execution_enqueued(execution_id)
        return execution

    async def terminate(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """Ends the execution TERMINATED now, then stops its work.

        Raises:
            NotFound: no such execution.
            FailedPrecondition: it had already ended otherwise (COMPLETED, ...).
        """
        message = reason or "terminated by request"
        context = await self._run(self.terminate_pipeline, execution_id, message)
        if context.updates:
            # Committed first: whatever the work reports from now on is refused.
            await self.signals.terminate_running(execution_id, message)
        return context.require_execution()

    async def recover(self, execution_id: str, reason: str = "") -> execution_pb2.AgentExecution:
        """Puts a FAILED execution back in the queue to continue from its
        recorded conversation; the attempt is recorded.

        Raises:
            NotFound: no such execution.
            FailedPrecondition: it is not FAILED (and was not recovered).
        """
        context = await self._run(self.recover_pipeline, execution_id, reason)
        execution = context.require_execution()
        if context.updates:
            previous = execution.status.attempts[-1].previous_error
            logger.info("Execution %s recovered after: %s", execution_id, previous)
            self.signals.execution_enqueued(execution_id)
        return execution

    async def settle_open_tool_calls(self, execution_id: str) -> execution_pb2.AgentExecution:
        """Settles INTERRUPTED the tool calls an ended execution left open.

        Raises:
            NotFound: no such execution.
        """
        context = await self._run(self.settle_pipeline, execution_id, "")
        return context.require_execution()
