"""The Temporal workflow of one execution: the agent loop, with every model
call and every tool call an activity that a `stigmer worker` runs.

The workflow id is the execution id, so starting it twice finds the running
one. The workflow holds no conversation: each activity reads the execution's
inputs from the Stigmer server and reports what it does through the server's
gRPC API (RecordEvents). The workflow only keeps which recorded messages make
up the conversation (`included`): a model call lost with its worker may have
left a partial AI message, which stays recorded but is not sent to the model
again. So neither environment secrets nor API keys enter Temporal's history.

Retry policies, chosen for side effects that must not happen twice:

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

Pause: each activity answers whether a pause was asked of the execution
(the server says so in its answer to the activity's reports). The workflow
then records PAUSED (an activity) and waits for the WAKE signal with no
activity running, so no worker is busy and the wait survives the restart of
the server and of every worker. The server signals WAKE when it claims the
resumed execution (signal-with-start); on each WAKE the workflow asks whether
the execution is IN_PROGRESS again, and goes on from where it stopped. A run
started for a recovered execution (or a resumed one whose workflow is gone)
begins from the recorded conversation instead (engine/continuations.py).

Cancelling the workflow cancels the running activity (workers heartbeat, and
the cancellation reaches them in the heartbeat's answer); the execution then
ends CANCELLED with the reason the server signalled before cancelling.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

WORKFLOW_NAME = "StigmerAgentExecution"
CANCEL_REASON_SIGNAL = "cancel-reason"
# The execution may have been resumed: look whether it runs again.
WAKE_SIGNAL = "wake"
DEFAULT_TASK_QUEUE = "stigmer-executions"
MODEL_ATTEMPTS = 3

# The activities' names: the workflow refers to them by name, so it does not
# import the worker's code (the model and MCP SDKs) into Temporal's sandbox.
BEGIN = "stigmer-begin"
CALL_MODEL = "stigmer-call-model"
CALL_TOOL = "stigmer-call-tool"
RECORD_LOST_TOOL_CALL = "stigmer-record-lost-tool-call"
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


@dataclass
class RequestedToolCall:
    id: str
    name: str
    server: str
    tool: str
    arguments: dict[str, Any]


@dataclass
class Begun:
    # The execution's messages so far: its HUMAN message, and for a run
    # that continues an earlier one, the conversation it recorded.
    included: list[int]
    tools: list[OfferedTool]
    # The last turn's tool calls that never ran, to run before the next model call.
    calls_to_run: list[RequestedToolCall] = field(default_factory=list)
    is_pause_requested: bool = False


@dataclass
class ModelCall:
    execution_id: str
    included: list[int]
    tools: list[OfferedTool]


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
    phase: str  # COMPLETED, FAILED or CANCELLED
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
    non_retryable_error_types=["ModelError", "ToolServerError", "StigmerError"],
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


@workflow.defn(name=WORKFLOW_NAME)
class AgentExecutionWorkflow:
    def __init__(self) -> None:
        self._cancel_reason = ""
        self._wakes = 0

    @workflow.signal(name=CANCEL_REASON_SIGNAL)
    def set_cancel_reason(self, reason: str) -> None:
        self._cancel_reason = reason

    @workflow.signal(name=WAKE_SIGNAL)
    def wake(self) -> None:
        self._wakes += 1

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
        await self._pause_point(given, is_requested=begun.is_pause_requested)
        for call in begun.calls_to_run:
            done = await self._call_tool(given, call)
            included.append(done.message_index)
            await self._pause_point(given, is_requested=done.is_pause_requested)
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
            await self._pause_point(given, is_requested=answer.is_pause_requested)
            for call in answer.tool_calls:
                done = await self._call_tool(given, call)
                included.append(done.message_index)
                await self._pause_point(given, is_requested=done.is_pause_requested)
        note = f"stopped after {given.max_steps} model calls (the step limit)"
        return Ending(given.execution_id, COMPLETED, note=note)

    async def _pause_point(self, given: WorkflowInput, *, is_requested: bool) -> None:
        """Between steps: when a pause was asked, records PAUSED and waits,
        with no activity running, until the execution runs again."""
        if not is_requested:
            return
        is_paused: bool = await workflow.execute_activity(
            PAUSE,
            given.execution_id,
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SAFE_TO_REPEAT,
        )
        if not is_paused:
            return  # the pause was withdrawn before it was honoured
        while True:
            await workflow.wait_condition(lambda: self._wakes > 0)
            self._wakes = 0
            is_resumed: bool = await workflow.execute_activity(
                IS_RESUMED,
                given.execution_id,
                result_type=bool,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=SAFE_TO_REPEAT,
            )
            if is_resumed:
                return

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
        lost: ToolCallDone = await workflow.execute_activity(
            RECORD_LOST_TOOL_CALL,
            ToolCallInput(given.execution_id, call, reason),
            result_type=ToolCallDone,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SAFE_TO_REPEAT,
        )
        return lost

    async def _end(self, given: WorkflowInput, ending: Ending) -> None:
        await workflow.execute_activity(
            END,
            ending,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=SAFE_TO_REPEAT,
        )
