"""The activities of the Temporal engine: one model call or one tool call of
an execution, run by a `stigmer worker` anywhere it can reach the Stigmer
server and Temporal.

Each activity reads the execution's inputs from the server (one
GetRunInputs call), does its one step with the same runtime as the embedded
engine (providers, MCP tool boxes, the recording sink with its secret
masking) and reports every event through RecordEvents as it happens, so a
watcher sees the answer grow live whichever machine runs it. Activities
heartbeat while they work: a lost worker is noticed within the heartbeat
timeout, and a cancelled workflow's cancellation reaches the activity.

Errors become Temporal ApplicationErrors whose type the workflow's retry
policies name: ModelError, ToolServerError and StigmerError (the execution
is gone or ended, an input is invalid) are not retried; a server that is
briefly unreachable is.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from stigmer import config
from stigmer.api.v1 import execution_pb2, worker_pb2
from stigmer.engine import temporal_workflow as flow
from stigmer.engine.context_history import conversation_history
from stigmer.engine.continuation import has_run, recorded_conversation
from stigmer.engine.recording import RecordingSink
from stigmer.engine.run_requests import (
    build_run_request,
    needs_skill_folder,
    run_skills,
)
from stigmer.errors import FailedPrecondition, NotFound, StigmerError, Unavailable
from stigmer.resources.execution_events import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PAUSED,
    has_ended_elsewhere,
    phase_event,
    system_message_event,
)
from stigmer.resources.secret_logs import install_log_masking, known_secrets
from stigmer.resources.secrets import SecretMasker
from stigmer.resources.tool_policy import ToolDecision
from stigmer.runtime.builtin_tools import BUILTIN_SERVER, BuiltinTools
from stigmer.runtime.context_window import fit_context
from stigmer.runtime.contract import (
    ContextSettings,
    ModelError,
    ModelSettings,
    RunRequest,
    SkillInfo,
    ToolCallRequest,
    ToolServerError,
)
from stigmer.runtime.conversation import ToolCall, ToolSpec, messages_from_history
from stigmer.runtime.model_calls import system_prompt, usage_of
from stigmer.runtime.provider_pool import ProviderPool
from stigmer.runtime.skill_folders import remove_skills, unpack_skills
from stigmer.runtime.tool_results import DEFAULT_MAX_BYTES
from stigmer.runtime.tools import ToolBox, ToolResult
from stigmer.tasks import cancel_tasks, guarded_task
from stigmer.worker.server_api import WorkerApiClient
from stigmer.worker.toolboxes import ToolBoxes

logger = logging.getLogger(__name__)
PHASES = {flow.COMPLETED: COMPLETED, flow.FAILED: FAILED, flow.CANCELLED: CANCELLED}


@contextlib.contextmanager
def _as_activity_errors() -> Iterator[None]:
    """Turns what stops a step into the error types the retry policies name.

    Their messages become the execution's status.error and travel through
    Temporal's history, so the secrets of the executions this worker runs
    are masked in them here, where they are made. `from None`: Temporal
    would carry the cause, with its unmasked message, along.
    """
    mask = known_secrets.mask
    try:
        yield
    except ModelError as error:
        raise ApplicationError(
            mask(f"model error: {error}"), type="ModelError", non_retryable=True
        ) from None
    except ToolServerError as error:
        raise ApplicationError(
            mask(f"tool server error: {error}"), type="ToolServerError", non_retryable=True
        ) from None
    except Unavailable as error:
        raise ApplicationError(mask(str(error)), type="Unavailable") from None
    except FailedPrecondition as error:
        if has_ended_elsewhere(error.facts):
            # The server ended the execution (a run limit, a cancel): the
            # workflow stops without recording an end of its own.
            raise ApplicationError(
                mask(str(error)), type=flow.EXECUTION_ENDED, non_retryable=True
            ) from None
        raise ApplicationError(mask(str(error)), type="StigmerError", non_retryable=True) from None
    except StigmerError as error:
        raise ApplicationError(mask(str(error)), type="StigmerError", non_retryable=True) from None


@contextlib.asynccontextmanager
async def _heartbeating(interval: float) -> AsyncIterator[None]:
    """Heartbeats every `interval` while the block runs: the worker is alive,
    and a cancellation requested meanwhile comes back with the answer."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    info = activity.info()
    task = guarded_task(f"stigmer-heartbeat-{info.workflow_id}-{info.activity_id}", beat)
    try:
        yield
    finally:
        await cancel_tasks([task])


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _heartbeats(
    short: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Makes a short activity heartbeat: its worker's loss is noticed within
    the heartbeat timeout, not its whole start-to-close timeout."""

    @functools.wraps(short)
    async def heartbeating(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        async with _heartbeating(_heartbeat_interval()):
            return await short(*args, **kwargs)

    return heartbeating


def _heartbeat_interval() -> float:
    timeout = activity.info().heartbeat_timeout
    return max(0.2, timeout.total_seconds() / 4) if timeout else 5.0


class ServerSkillSource:
    """Skill archives fetched through the server's worker API, for one execution."""

    def __init__(self, server: WorkerApiClient, execution_id: str) -> None:
        self.server = server
        self.execution_id = execution_id

    async def archive(self, skill: SkillInfo) -> bytes:
        try:
            return await self.server.skill_archive(self.execution_id, skill.hash)
        except NotFound as error:
            raise ToolServerError(f"skill {skill.slug!r}: {error.message}") from None


class ExecutionActivities:
    """The activities, sharing one server client and one provider per model."""

    def __init__(
        self,
        server: WorkerApiClient,
        model: ModelSettings,
        *,
        max_tool_result_bytes: int = DEFAULT_MAX_BYTES,
        context: ContextSettings | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.server = server
        self.model = model
        self.context = context or ContextSettings()
        self.max_tool_result_bytes = max_tool_result_bytes
        # This worker's own: several workers on one machine never share a folder.
        base = work_dir or config.stigmer_home() / "work"
        self.work_dir = base / f"worker-{socket.gethostname()}-{os.getpid()}"
        self.tool_boxes = ToolBoxes()
        self._providers = ProviderPool()
        install_log_masking()

    def all(self) -> Sequence[Callable[..., Coroutine[Any, Any, Any]]]:
        return (
            self.begin,
            self.call_model,
            self.call_tool,
            self.record_lost_tool_call,
            self.request_approvals,
            self.settle,
            self.end,
            self.pause,
            self.is_resumed,
        )

    async def aclose(self) -> None:
        await self.tool_boxes.aclose()
        await asyncio.to_thread(remove_skills, self.work_dir)
        # The local model is shared by the worker's activities and lives as long as it.
        await self._providers.aclose()

    async def _prepared(
        self, execution_id: str
    ) -> tuple[worker_pb2.ExecutionRunInputs, RunRequest, SecretMasker]:
        inputs = await self.server.run_inputs(execution_id)
        skills_dir = ""
        if needs_skill_folder(inputs):
            # Kept between the execution's activities on this worker (its tool
            # servers stay open too), removed by END or when the worker stops.
            folder = self.work_dir / execution_id
            source = ServerSkillSource(self.server, execution_id)
            await unpack_skills(folder, run_skills(inputs), source)
            skills_dir = str(folder)
        request, environment = build_run_request(
            inputs,
            self.model,
            max_steps=1,
            max_tool_result_bytes=self.max_tool_result_bytes,
            context=self.context,
            skills_dir=skills_dir,
        )
        # Until the execution ends here (END), or later executions push it out:
        # its tool servers stay open between activities and may log meanwhile.
        known_secrets.remember(execution_id, environment.secrets)
        return inputs, request, SecretMasker(environment.secrets)

    def _sink(
        self, execution_id: str, inputs: worker_pb2.ExecutionRunInputs, masker: SecretMasker
    ) -> RecordingSink:
        async def record(
            events: Sequence[execution_pb2.ExecutionEvent],
        ) -> execution_pb2.AgentExecution:
            return await self.server.record_events(execution_id, events)

        return RecordingSink(
            record,
            masker,
            len(inputs.execution.status.messages),
            max_tool_result_bytes=self.max_tool_result_bytes,
            known_calls=inputs.execution.status.tool_calls,
            max_tool_result_chars=inputs.execution.status.run_config.max_tool_result_chars,
            model_note=inputs.execution.status.cost_note,
        )

    # -- the activities -----------------------------------------------------

    @activity.defn(name=flow.BEGIN)
    async def begin(self, execution_id: str) -> flow.Begun:
        """Checks the inputs and lists the tools the model will be offered."""
        with _as_activity_errors():
            async with _heartbeating(_heartbeat_interval()):
                inputs, request, _ = await self._prepared(execution_id)
                builtins = BuiltinTools(
                    request.skills, ServerSkillSource(self.server, execution_id)
                )
                async with ToolBox(request.tool_servers, policy=request.tool_policy) as toolbox:
                    tools = [
                        flow.OfferedTool(
                            name=spec.name,
                            description=spec.description,
                            input_schema=dict(spec.input_schema),
                            server=BUILTIN_SERVER
                            if builtins.offers(spec.name)
                            else toolbox.server_of(spec.name) or "",
                            tool=toolbox.tool_of(spec.name) or spec.name,
                            is_destructive=toolbox.is_destructive(spec.name),
                        )
                        for spec in builtins.offered_with(toolbox.tools)
                    ]
        if has_run(inputs.execution):
            # It stopped between steps: it goes on from its recorded conversation.
            recorded = recorded_conversation(inputs.execution)
            return flow.Begun(
                list(recorded.included),
                tools,
                is_continuing=True,
                is_pause_requested=inputs.execution.status.is_pause_requested,
            )
        # Only the user's message: an execution re-queued after its worker
        # was lost before the model said anything keeps that empty AI message.
        messages = inputs.execution.status.messages
        human = [i for i, m in enumerate(messages) if m.type == execution_pb2.MESSAGE_TYPE_HUMAN]
        return flow.Begun(human, tools)

    @activity.defn(name=flow.CALL_MODEL)
    async def call_model(self, call: flow.ModelCall) -> flow.ModelAnswer:
        """One model turn over the conversation so far, streamed into the execution."""
        # Heartbeating from the start: reading the inputs and building the
        # provider (the SDKs' first import) take time too.
        with _as_activity_errors():
            async with _heartbeating(_heartbeat_interval()):
                inputs, request, masker = await self._prepared(call.execution_id)
                conversation = messages_from_history(
                    conversation_history(
                        [*inputs.history, inputs.execution], included_in_last=set(call.included)
                    )
                )
                sink = self._sink(call.execution_id, inputs, masker)
                provider = await self._providers.get(request.model)
                tools = [ToolSpec(t.name, t.description, t.input_schema) for t in call.tools]
                # The summary call, when one is needed, runs here, in this activity.
                conversation = await fit_context(
                    request.context,
                    request.model,
                    provider,
                    system=request.instructions,
                    messages=conversation,
                    tools=tools,
                    sink=sink,
                )
                await sink.ai_message_started()
                began = time.monotonic()
                turn = await provider.stream_turn(
                    system=system_prompt(request.instructions, sink.model_note()),
                    messages=conversation,
                    tools=tools,
                    on_delta=sink.ai_content_delta,
                    sampling=request.sampling,
                )
                usage = usage_of(
                    turn,
                    request.model,
                    call_id=_model_call_id(),
                    duration_seconds=time.monotonic() - began,
                )
                if usage is not None:
                    await sink.usage(usage)
                gated = _gated_calls(
                    _requested_calls(turn.tool_calls, call.tools), call.tools, request
                )
                await sink.ai_message_finished(turn.content, tuple(c for _, c in gated))
                requested = [asked for asked, _ in gated]
        return flow.ModelAnswer(
            sink.ai_message_index, requested, is_pause_requested=sink.is_pause_requested()
        )

    @activity.defn(name=flow.CALL_TOOL)
    async def call_tool(self, given: flow.ToolCallInput) -> flow.ToolCallDone:
        """One tool call, on the server that offers the tool (kept open for the
        execution's next calls on this worker)."""
        call = given.call
        with _as_activity_errors():
            async with _heartbeating(_heartbeat_interval()):
                inputs, request, masker = await self._prepared(given.execution_id)
                sink = self._sink(given.execution_id, inputs, masker)
                asked = ToolCallRequest(call.id, call.name, call.server, call.arguments)
                await sink.tool_call_started(asked)
                servers = [s for s in request.tool_servers if s.name == call.server]
                if call.server == BUILTIN_SERVER:
                    source = ServerSkillSource(self.server, given.execution_id)
                    builtins = BuiltinTools(request.skills, source)
                    if builtins.offers(call.tool):
                        result = await builtins.call(call.tool, call.arguments)
                    else:
                        result = ToolResult(f"unknown tool {call.name!r}", is_error=True)
                    await sink.tool_call_finished(call.id, result.text, is_error=result.is_error)
                elif not servers:
                    # The model named a tool nobody offers: an error result it can read.
                    offered = sorted({server.name for server in request.tool_servers})
                    text = f"unknown tool {call.name!r}; the tool servers are: {offered}"
                    await sink.tool_call_finished(call.id, text, is_error=True)
                else:
                    result = await self.tool_boxes.call(
                        given.execution_id,
                        servers[0],
                        call.tool,
                        call.arguments,
                        call_timeout_seconds=request.tool_call_timeout_seconds,
                    )
                    await sink.tool_call_finished(call.id, result.text, is_error=result.is_error)
        return flow.ToolCallDone(
            sink.message_count - 1, is_pause_requested=sink.is_pause_requested()
        )

    @activity.defn(name=flow.RECORD_LOST_TOOL_CALL)
    @_heartbeats
    async def record_lost_tool_call(self, given: flow.ToolCallInput) -> flow.ToolCallDone:
        """Records a tool call whose worker was lost as FAILED, with the reason
        as its result, so the model reads what happened."""
        call = given.call
        with _as_activity_errors():
            inputs, _, masker = await self._prepared(given.execution_id)
            # The lost worker may have recorded the result before it went:
            # the call then happened, and its result stands.
            for index, message in enumerate(inputs.execution.status.messages):
                if message.tool_call_id == call.id:
                    return flow.ToolCallDone(index)
            sink = self._sink(given.execution_id, inputs, masker)
            sink.reopen(ToolCallRequest(call.id, call.name, call.server, call.arguments))
            await sink.tool_call_finished(call.id, given.reason, is_error=True)
        return flow.ToolCallDone(sink.message_count - 1)

    @activity.defn(name=flow.REQUEST_APPROVALS)
    @_heartbeats
    async def request_approvals(self, given: flow.ApprovalsRequest) -> None:
        """The asked calls wait for a person: pending approvals, and the
        execution WAITING_FOR_APPROVAL (once: a retry after a decision
        asks nothing again)."""
        with _as_activity_errors():
            inputs, _, masker = await self._prepared(given.execution_id)
            status = inputs.execution.status
            calls = {c.id: c for c in status.tool_calls}
            if any(
                calls[c.id].HasField("approval") or c.id in _pending_ids(status)
                for c in given.calls
                if c.id in calls
            ):
                return
            messages = status.messages
            text = (
                messages[given.model_text_index].content
                if 0 <= given.model_text_index < len(messages)
                else ""
            )
            sink = self._sink(given.execution_id, inputs, masker)
            await sink.approvals_requested(
                tuple(ToolCallRequest(c.id, c.name, c.server, c.arguments) for c in given.calls),
                text,
            )

    @activity.defn(name=flow.SETTLE)
    @_heartbeats
    async def settle(self, given: flow.SettleInput) -> flow.Settled:
        """Records the results of the open calls decided not to run (skipped,
        rejected, interrupted) and names the approved ones to run."""
        with _as_activity_errors():
            inputs, _, masker = await self._prepared(given.execution_id)
            sink = self._sink(given.execution_id, inputs, masker)
            by_name = {tool.name: tool for tool in given.tools}
            to_run = []
            for open_call in recorded_conversation(inputs.execution).continuation.open_calls:
                call = open_call.call
                if open_call.result is None:
                    tool = by_name.get(call.name)
                    to_run.append(
                        flow.RequestedToolCall(
                            id=call.id,
                            name=call.name,
                            server=tool.server if tool else "",
                            tool=tool.tool if tool else call.name,
                            arguments=dict(call.arguments),
                        )
                    )
                elif open_call.is_recorded:
                    await sink.tool_result_added(call.id)
                else:
                    sink.reopen(call)
                    await sink.tool_call_finished(
                        call.id, open_call.result, is_error=open_call.is_error
                    )
            current = await self.server.run_inputs(given.execution_id)
        included = recorded_conversation(current.execution).included
        return flow.Settled(list(included), to_run)

    @activity.defn(name=flow.PAUSE)
    @_heartbeats
    async def pause(self, execution_id: str) -> bool:
        """Records PAUSED; False when the pause was withdrawn meanwhile (the
        server then does not record it, and the run goes on)."""
        with _as_activity_errors():
            recorded = await self.server.record_events(execution_id, [phase_event(PAUSED)])
        if recorded.status.phase == PAUSED:
            # Its tool servers are not kept open for a pause that may last days.
            await self.tool_boxes.close_execution(execution_id)
            return True
        return False

    @activity.defn(name=flow.IS_RESUMED)
    @_heartbeats
    async def is_resumed(self, execution_id: str) -> bool:
        """Whether the paused execution runs again (claimed after Resume)."""
        with _as_activity_errors():
            inputs = await self.server.run_inputs(execution_id)
        return inputs.execution.status.phase == IN_PROGRESS

    @activity.defn(name=flow.END)
    @_heartbeats
    async def end(self, ending: flow.Ending) -> None:
        """Records the terminal phase; an execution already ended (or deleted)
        elsewhere is left as it is."""
        mask = known_secrets.mask
        events = []
        if ending.phase == flow.ENDED:
            await self.tool_boxes.close_execution(ending.execution_id)
            known_secrets.forget(ending.execution_id)
            logger.info(
                "execution %s was ended by the server: %s", ending.execution_id, ending.reason
            )
            return
        if ending.note:
            events.append(system_message_event(mask(ending.note)))
        events.append(phase_event(PHASES[ending.phase], mask(ending.reason)))
        await self.tool_boxes.close_execution(ending.execution_id)
        known_secrets.forget(ending.execution_id)
        await asyncio.to_thread(remove_skills, self.work_dir / ending.execution_id)
        with _as_activity_errors():
            try:
                await self.server.record_events(ending.execution_id, events)
            except (NotFound, FailedPrecondition) as error:
                logger.info("execution %s ended elsewhere: %s", ending.execution_id, error)


def _pending_ids(status: execution_pb2.AgentExecutionStatus) -> set[str]:
    return {approval.tool_call_id for approval in status.pending_approvals}


def _gated_calls(
    requested: Sequence[flow.RequestedToolCall],
    offered: Sequence[flow.OfferedTool],
    request: RunRequest,
) -> list[tuple[flow.RequestedToolCall, ToolCallRequest]]:
    """Each call with its gate (see runtime/loop.py): the workflow's copy
    says whether a person decides first, the sink's records it."""
    by_name = {tool.name: tool for tool in offered}
    gated = []
    for call in requested:
        tool = by_name.get(call.name)
        decision = (
            request.tool_policy.decide(tool.server, tool.tool, is_destructive=tool.is_destructive)
            if tool
            else ToolDecision.ALLOW
        )
        gate = request.grants.gate(decision, call.server, call.name)
        call.is_asked = gate.is_asked
        schema = dict(tool.input_schema) if tool and gate.is_asked else None
        gated.append(
            (
                call,
                ToolCallRequest(
                    call.id, call.name, call.server, call.arguments, gate=gate, input_schema=schema
                ),
            )
        )
    return gated


def _model_call_id() -> str:
    """The same for every report of one attempt of the activity: a report
    the worker sends again counts once; a retried attempt is another call."""
    info = activity.info()
    return f"{info.workflow_id}/{info.activity_id}/{info.attempt}"


def _requested_calls(
    asked: Sequence[ToolCall], offered: Sequence[flow.OfferedTool]
) -> list[flow.RequestedToolCall]:
    """The model's tool calls, each with the server and tool it names (none
    for a tool nobody offers: its call then answers with an error)."""
    by_name = {tool.name: tool for tool in offered}
    requested = []
    for call in asked:
        tool = by_name.get(call.name)
        requested.append(
            flow.RequestedToolCall(
                id=call.id,
                name=call.name,
                server=tool.server if tool else "",
                tool=tool.tool if tool else call.name,
                arguments=dict(call.arguments),
            )
        )
    return requested
