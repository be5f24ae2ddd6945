"""The Temporal workflow of one execution: the agent loop, with every model
call and every tool call an activity that a `stigmer worker` runs.

The workflow id is the execution id, so starting it twice finds the running
one. The workflow holds no conversation: each activity reads the execution's
inputs from the Stigmer server and reports what it does through the server's
gRPC API (RecordEvents). The workflow only keeps which recorded messages make
up the conversation (`included`): a model call lost with its worker may have
left a partial AI message, which stays recorded but is not sent to the model
again. So neither environment secrets nor API keys enter Temporal's history.

Every activity heartbeats, so the loss of the worker running it is noticed
within the heartbeat timeout; what happens then is its retry policy, chosen
for side effects that must not happen twice:

- `begin` (read the inputs, list the tools) and `end` (record the terminal
  phase) change nothing outside the execution and are safe to repeat:
  retried with backoff.
- A model call has no side effect outside the execution: when its worker is
  lost (no heartbeat within `heartbeat_seconds`) it is retried, up to
  MODEL_ATTEMPTS attempts, and the retry starts a new AI message. A model
  error (the endpoint refused or could not be reached) is not retried: the
  execution FAILS with it, as on the embedded engine.
- A tool call is never retried (one attempt): a tool may write a file or send
  a mail. When the worker running it is lost, the call is recorded FAILED
  with that reason and the model reads the failure as the tool's result, so
  the execution goes on and ends COMPLETED or FAILED, never stuck.

Approvals: a model turn whose calls include some the tool policy asks
about runs the others, records the asked ones as waiting
(REQUEST_APPROVALS) and waits for the CONTINUE signal naming that turn (its
AI message's index), with no activity running: the workflow holds no worker
while a person decides, and survives the restart of the server and of every
worker. The server sends the signal (with a signal-with-start, so an
execution whose workflow is gone gets a new one) when it claims the
execution again after the last decision; SETTLE then records the skipped
and rejected calls' results and says which approved calls to run. A
workflow started for an execution that already ran begins the same way,
from its recorded conversation (engine/continuation.py).

Pause: each activity answers whether a pause was asked of the execution
(the server says so in its answer to the activity's reports). At the next
point between steps (not inside a turn whose calls wait for a person) the
workflow records PAUSED (an activity) and waits, with no activity running,
for a CONTINUE signal, which the server sends when it claims the resumed
execution; on each one it asks whether the execution is IN_PROGRESS again,
and goes on from where it stopped. A recovered execution's workflow runs
again from the recorded conversation, as one that waited for a person.

Cancelling the workflow cancels the running activity (workers heartbeat, and
the cancellation reaches them in the heartbeat's answer); the execution then
ends CANCELLED with the reason the server signalled before cancelling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

WORKFLOW_NAME = "StigmerAgentExecution"
CANCEL_REASON_SIGNAL = "cancel-reason"
CONTINUE_SIGNAL = "continue"
DEFAULT_TASK_QUEUE = "stigmer-executions"
MODEL_ATTEMPTS = 3

# The activities' names: the workflow refers to them by name, so it does not
# import the worker's code (the model and MCP SDKs) into Temporal's sandbox.
BEGIN = "stigmer-begin"
CALL_MODEL = "stigmer-call-model"
CALL_TOOL = "stigmer-call-tool"
RECORD_LOST_TOOL_CALL = "stigmer-record-lost-tool-call"
REQUEST_APPROVALS = "stigmer-request-approvals"
SETTLE = "stigmer-settle"
END = "stigmer-end"
PAUSE = "stigmer-pause"
IS_RESUMED = "stigmer-is-resumed"

# The phases an execution ends in, by name: a deliberate copy of those in
# stigmer.resources.execution_events. Workflow code runs in Temporal's
# sandbox, and this module keeps to temporalio and the standard library so
# that nothing of Stigmer's (the generated protobuf code included) is loaded
# into it; and an Ending is stored in the workflow's history as JSON, where a
# name reads better than an enum number. worker/activities.py maps the names
# back to phases (PHASES).
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
# Not a phase: the server had ended the execution already (at a run limit,
# say) and refused a report; END then only releases the worker's resources.
ENDED = "ENDED"
# The type of the ApplicationError an activity raises for such a refusal.
EXECUTION_ENDED = "ExecutionEnded"


@dataclass
class WorkflowInput:
    execution_id: str
    max_steps: int = 16
    heartbeat_seconds: float = 30.0
    model_timeout_seconds: float = 600.0
    tool_timeout_seconds: float = 900.0


@dataclass
class OfferedTool:
    name: str  # as the model is offered it (unique across the run's servers)
    description: str
    input_schema: dict[str, Any]
    server: str  # the tool server that offers it
    tool: str  # its own name on that server
    is_destructive: bool = False  # its server annotates it destructiveHint: true


@dataclass
class Begun:
    # The execution's messages so far: its HUMAN message, and for a run
    # that continues an earlier one, the conversation it recorded.
    included: list[int]
    tools: list[OfferedTool]
    # It already ran (it waited for a person): settle its open calls first.
    is_continuing: bool = False
    is_pause_requested: bool = False


@dataclass
class ModelCall:
    execution_id: str
    included: list[int]
    tools: list[OfferedTool]


@dataclass
class RequestedToolCall:
    id: str
    name: str
    server: str
    tool: str
    arguments: dict[str, Any]
    is_asked: bool = False  # a person decides before it runs


@dataclass
class ApprovalsRequest:
    execution_id: str
    model_text_index: int  # the AI message whose turn asked for the calls
    calls: list[RequestedToolCall]


@dataclass
class SettleInput:
    execution_id: str
    tools: list[OfferedTool]


@dataclass
class Settled:
    included: list[int]  # the conversation's messages, results of decided calls included
    to_run: list[RequestedToolCall]


@dataclass
class ModelAnswer:
    message_index: int
    tool_calls: list[RequestedToolCall] = field(default_factory=list)
    is_pause_requested: bool = False


@dataclass
class ToolCallInput:
    execution_id: str
    call: RequestedToolCall
    reason: str = ""  # why the call failed, for RECORD_LOST_TOOL_CALL


@dataclass
class ToolCallDone:
    message_index: int  # the TOOL message holding the result
    is_pause_requested: bool = False


@dataclass
class Ending:
    execution_id: str
    phase: str  # COMPLETED, FAILED, CANCELLED, or ENDED (ended by the server)
    reason: str = ""
    note: str = ""  # a SYSTEM message recorded before the phase, when set


SAFE_TO_REPEAT = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=10,
)
MODEL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=MODEL_ATTEMPTS,
    non_retryable_error_types=["ModelError", "ToolServerError", "StigmerError", EXECUTION_ENDED],
)
TOOL_RETRY = RetryPolicy(maximum_attempts=1)


def reason_of(error: BaseException) -> str:
    """The innermost message of an activity failure, in a user's words."""
    cause = error.__cause__ if isinstance(error, ActivityError) else None
    if isinstance(cause, TimeoutError):
        return "its worker stopped answering (lost, or killed) and the retries ran out"
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or error)


def _is_ended_elsewhere(error: ActivityError) -> bool:
    cause = error.__cause__
    return isinstance(cause, ApplicationError) and cause.type == EXECUTION_ENDED


@workflow.defn(name=WORKFLOW_NAME)
class AgentExecutionWorkflow:
    def __init__(self) -> None:
        self._cancel_reason = ""
        self._wakes = 0
        self._continued: set[int] = set()

    @workflow.signal(name=CANCEL_REASON_SIGNAL)
    def set_cancel_reason(self, reason: str) -> None:
        self._cancel_reason = reason

    @workflow.signal(name=CONTINUE_SIGNAL)
    def continue_turn(self, message_index: int) -> None:
        """Every call of the turn of AI message `message_index` is decided."""
        self._continued.add(message_index)
        # A paused workflow looks whether its execution runs again.
        self._wakes += 1

    def _is_continued(self, turn: int) -> Callable[[], bool]:
        return lambda: turn in self._continued

    @workflow.run
    async def run(self, given: WorkflowInput) -> str:
        try:
            ending = await self._converse(given)
        except asyncio.CancelledError:
            await self._end(given, self._cancelled(given))
            raise
        except ActivityError as error:
            if isinstance(error.__cause__, CancelledError):
                # The running activity acknowledged the workflow's cancellation.
                await self._end(given, self._cancelled(given))
                raise asyncio.CancelledError() from error
            reason = reason_of(error)
            if _is_ended_elsewhere(error):
                ending = Ending(given.execution_id, ENDED, reason)
            else:
                ending = Ending(given.execution_id, FAILED, reason, note=reason)
        await self._end(given, ending)
        return ending.phase

    def _cancelled(self, given: WorkflowInput) -> Ending:
        return Ending(given.execution_id, CANCELLED, self._cancel_reason or "cancelled")

    async def _converse(self, given: WorkflowInput) -> Ending:
        heartbeat = timedelta(seconds=given.heartbeat_seconds)
        begun: Begun = await workflow.execute_activity(
            BEGIN,
            given.execution_id,
            result_type=Begun,
            start_to_close_timeout=timedelta(seconds=120),
            heartbeat_timeout=heartbeat,
            retry_policy=SAFE_TO_REPEAT,
        )
        included = list(begun.included)
        if begun.is_continuing:
            included = await self._settle(given, begun.tools)
        await self._pause_point(given, is_requested=begun.is_pause_requested)
        for _ in range(given.max_steps):
            answer: ModelAnswer = await workflow.execute_activity(
                CALL_MODEL,
                ModelCall(given.execution_id, included, begun.tools),
                result_type=ModelAnswer,
                start_to_close_timeout=timedelta(seconds=given.model_timeout_seconds),
                heartbeat_timeout=heartbeat,
                retry_policy=MODEL_RETRY,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            included.append(answer.message_index)
            if not answer.tool_calls:
                return Ending(given.execution_id, COMPLETED)
            is_gated = any(call.is_asked for call in answer.tool_calls)
            if not is_gated:
                await self._pause_point(given, is_requested=answer.is_pause_requested)
            for call in answer.tool_calls:
                if not call.is_asked:
                    done = await self._call_tool(given, call)
                    included.append(done.message_index)
                    if not is_gated:
                        await self._pause_point(given, is_requested=done.is_pause_requested)
            asked = [call for call in answer.tool_calls if call.is_asked]
            if asked:
                await self._repeatable(
                    given,
                    REQUEST_APPROVALS,
                    ApprovalsRequest(given.execution_id, answer.message_index, asked),
                )
                await workflow.wait_condition(self._is_continued(answer.message_index))
                included = await self._settle(given, begun.tools)
        note = f"stopped after {given.max_steps} model calls (the step limit)"
        return Ending(given.execution_id, COMPLETED, note=note)

    async def _pause_point(self, given: WorkflowInput, *, is_requested: bool) -> None:
        """Between steps: when a pause was asked, records PAUSED and waits,
        with no activity running, until the execution runs again."""
        if not is_requested:
            return
        is_paused: bool = await self._repeatable(given, PAUSE, given.execution_id, bool)
        if not is_paused:
            return  # the pause was withdrawn before it was honoured
        while True:
            await workflow.wait_condition(lambda: self._wakes > 0)
            self._wakes = 0
            is_resumed: bool = await self._repeatable(given, IS_RESUMED, given.execution_id, bool)
            if is_resumed:
                return

    async def _settle(self, given: WorkflowInput, tools: list[OfferedTool]) -> list[int]:
        """The open calls of the turn the execution stopped in, each given
        its result: recorded for the decided ones, run for the approved.
        Returns the whole conversation's messages (SETTLE is safe to repeat:
        it records only what has no result yet, and reads the rest)."""
        settled: Settled = await self._repeatable(
            given, SETTLE, SettleInput(given.execution_id, tools), Settled
        )
        included = list(settled.included)
        for call in settled.to_run:
            done = await self._call_tool(given, call)
            included.append(done.message_index)
        return included

    async def _call_tool(self, given: WorkflowInput, call: RequestedToolCall) -> ToolCallDone:
        try:
            done: ToolCallDone = await workflow.execute_activity(
                CALL_TOOL,
                ToolCallInput(given.execution_id, call),
                result_type=ToolCallDone,
                start_to_close_timeout=timedelta(seconds=given.tool_timeout_seconds),
                heartbeat_timeout=timedelta(seconds=given.heartbeat_seconds),
                retry_policy=TOOL_RETRY,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            return done
        except ActivityError as error:
            if not isinstance(error.__cause__, TimeoutError):
                raise
        reason = (
            "the worker running this tool call was lost before it finished; tool calls "
            "are not retried because they may have side effects"
        )
        lost: ToolCallDone = await self._repeatable(
            given,
            RECORD_LOST_TOOL_CALL,
            ToolCallInput(given.execution_id, call, reason),
            ToolCallDone,
        )
        return lost

    async def _end(self, given: WorkflowInput, ending: Ending) -> None:
        await self._repeatable(given, END, ending)

    async def _repeatable(
        self, given: WorkflowInput, name: str, argument: Any, result_type: type | None = None
    ) -> Any:
        """A short activity that is safe to repeat. It heartbeats, so one whose
        worker was killed is retried within the heartbeat timeout rather than
        after its whole start-to-close timeout: a paused execution resumed
        after a `kill -9` of its worker goes on at once."""
        return await workflow.execute_activity(
            name,
            argument,
            result_type=result_type,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=given.heartbeat_seconds),
            retry_policy=SAFE_TO_REPEAT,
        )
