"""The embedded engine: executions run as asyncio tasks in the server process.

A bounded pool of workers takes PENDING executions from the store (the
durable queue: the executions themselves, indexed by phase), each under a
lease its worker renews. A reaper, at start-up and every lease period,
re-queues or fails executions whose lease expired: their worker crashed or
the server was killed. Cancel cancels the execution's task, wherever it is
awaiting (a model stream, a tool call), and the execution ends CANCELLED;
terminate cancels it the same way, after the execution was recorded
TERMINATED, so what the task still reports is refused.

A pause is honoured by the agent loop at its next point between steps: the
task records PAUSED and ends, freeing its slot. Resume and Recover put the
execution back in the queue, and the task that claims it continues from the
recorded conversation (continuation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from stigmer.api.v1 import execution_pb2
from stigmer.domain.execution.inputs import gather_inputs
from stigmer.domain.registry import Domains
from stigmer.engine.continuation import has_run, recorded_conversation
from stigmer.engine.options import EngineOptions
from stigmer.engine.recording import RecordingSink
from stigmer.engine.run_requests import build_run_request
from stigmer.errors import FailedPrecondition, NotFound, StigmerError
from stigmer.resources.execution_events import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PAUSED,
    WAITING_FOR_APPROVAL,
    phase_event,
)
from stigmer.resources.secret_logs import install_log_masking, known_secrets
from stigmer.resources.secrets import SecretMasker
from stigmer.runtime.contract import ModelError, RunRequest, RunSink, ToolServerError
from stigmer.runtime.provider_pool import ProviderPool
from stigmer.store.base import Lease
from stigmer.tasks import cancel_tasks, guarded_task

logger = logging.getLogger(__name__)
AgentLoop = Callable[[RunRequest, RunSink], Awaitable[Any]]


class EmbeddedEngine:
    def __init__(
        self,
        domains: Domains,
        options: EngineOptions,
        *,
        agent_loop: AgentLoop | None = None,
    ) -> None:
        self.domains = domains
        self.options = options
        self.owner = f"embedded/{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._agent_loop: AgentLoop = agent_loop or self._run_with_shared_provider
        self._providers = ProviderPool()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancel_reasons: dict[str, str] = {}
        # Executions cancelled because the server stops: handed back to the
        # queue (or failed) as abandoned, not ended CANCELLED.
        self._stopped_by_server: set[str] = set()

    # -- ExecutionSignals --------------------------------------------------

    def execution_enqueued(self, execution_id: str) -> None:
        self._wakeup.set()

    async def cancel_running(self, execution_id: str, reason: str) -> bool:
        task = self._running.get(execution_id)
        if task is None:
            return False
        self._cancel_reasons.setdefault(execution_id, reason)
        task.cancel()
        return True

    async def terminate_running(self, execution_id: str, reason: str) -> bool:
        # Not awaited: the execution is TERMINATED already, and its task's
        # last reports (CANCELLED) are refused as ended.
        return await self.cancel_running(execution_id, reason)

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        install_log_masking()
        if self._agent_loop == self._run_with_shared_provider:
            # The model and MCP SDKs take a while to import: do it off the
            # event loop, before the first execution would stall it.
            await asyncio.to_thread(importlib.import_module, "stigmer.runtime.loop")
        await self._reap_once()
        self._tasks = [
            guarded_task("stigmer-dispatcher", self._dispatch),
            guarded_task("stigmer-lease-reaper", self._reap_forever),
        ]
        logger.info(
            "Embedded engine started: %d workers, lease %.1fs",
            self.options.workers,
            self.options.lease_seconds,
        )

    async def stop(self) -> None:
        """Stops taking work, then hands running executions back: re-queued
        when nothing of them happened yet, else failed with the reason."""
        await cancel_tasks(self._tasks)
        self._tasks = []
        for execution_id, task in list(self._running.items()):
            self._cancel_reasons[execution_id] = "the server stopped while the execution ran"
            self._stopped_by_server.add(execution_id)
            task.cancel()
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=10)
        # The local model is shared by the process's executions and lives as long as the server.
        await self._providers.aclose()

    @property
    def running_count(self) -> int:
        return len(self._running)

    # -- dispatching -------------------------------------------------------

    async def _dispatch(self) -> None:
        """Claims PENDING executions while a worker slot is free.

        One loop claims for every slot, so a new execution costs one claim,
        not one per idle worker.
        """
        slots = asyncio.Semaphore(self.options.workers)
        queue = self.domains.execution_queue
        while True:
            await slots.acquire()
            # Cleared before claiming: an execution enqueued during the claim
            # sets it again, and the wait below returns at once.
            self._wakeup.clear()
            try:
                execution = await queue.claim_next(self.owner, self.options.lease_seconds)
            except StigmerError as error:
                # The store is briefly unreachable: executions wait in it.
                slots.release()
                logger.warning("cannot claim executions: %s", error)
                await asyncio.sleep(self.options.poll_seconds)
                continue
            except BaseException:
                slots.release()
                raise
            if execution is None:
                slots.release()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow
                # the cancellation that stop() sends if the event fires at
                # the same moment, and stop() would wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.poll_seconds):
                        await self._wakeup.wait()
                continue
            execution_id = execution.metadata.id
            # An execution continued right after it stopped to wait may still
            # be closing its tool servers here: the new run starts after that.
            previous = self._running.get(execution_id)
            self._running[execution_id] = asyncio.create_task(
                self._run_in_slot(execution, slots, previous),
                name=f"stigmer-execution-{execution_id}",
            )

    async def _run_in_slot(
        self,
        execution: execution_pb2.AgentExecution,
        slots: asyncio.Semaphore,
        previous: asyncio.Task[None] | None,
    ) -> None:
        execution_id = execution.metadata.id
        try:
            if previous is not None:
                await asyncio.wait([previous])
            await self._run(execution)
        finally:
            if self._running.get(execution_id) is asyncio.current_task():
                self._running.pop(execution_id, None)
                self._cancel_reasons.pop(execution_id, None)
                self._stopped_by_server.discard(execution_id)
            slots.release()
            # Another PENDING execution may be waiting behind this one's session.
            self._wakeup.set()

    async def _run_with_shared_provider(self, request: RunRequest, sink: RunSink) -> Any:
        """The agent loop with the engine's provider for the request's model."""
        # Imported when the engine starts (see start), not when the server
        # module is: the CLI's client commands never need the model SDKs.
        from stigmer.runtime.loop import run_agent

        provider = await self._providers.get(request.model)
        return await run_agent(request, sink, provider=provider)

    async def _run(self, execution: execution_pb2.AgentExecution) -> None:
        execution_id = execution.metadata.id
        executions = self.domains.executions
        renewer = guarded_task(f"stigmer-lease-{execution_id}", lambda: self._renew(execution_id))
        is_stopped: list[bool] = []

        async def record(
            events: Sequence[execution_pb2.ExecutionEvent],
        ) -> execution_pb2.AgentExecution:
            recorded = await executions.record_events(execution_id, events)
            if recorded.status.phase == WAITING_FOR_APPROVAL and not is_stopped:
                # Recording the wait dropped the lease: nothing may renew it
                # or release it now, a decision may already have re-queued
                # the execution and someone else claimed it.
                is_stopped.append(True)
                renewer.cancel()
            return recorded

        sink = RecordingSink(record, SecretMasker(()), len(execution.status.messages))
        try:
            while True:
                inputs = await gather_inputs(self.domains, execution_id)
                request, environment = build_run_request(
                    inputs,
                    self.options.model,
                    max_steps=self.options.max_steps,
                    max_tool_result_bytes=self.options.max_tool_result_bytes,
                )
                if has_run(inputs.execution):
                    # It stopped between steps (it waited for a person, was
                    # paused, or failed and was recovered): it goes on from
                    # its recorded conversation.
                    continued = recorded_conversation(inputs.execution).continuation
                    request = dataclasses.replace(request, continuation=continued)
                known_secrets.remember(execution_id, environment.secrets)
                sink = RecordingSink(
                    record,
                    SecretMasker(environment.secrets),
                    len(inputs.execution.status.messages),
                    max_tool_result_bytes=self.options.max_tool_result_bytes,
                    known_calls=inputs.execution.status.tool_calls,
                )
                outcome = await self._agent_loop(request, sink)
                await sink.flush()
                if getattr(outcome, "is_waiting", False):
                    # The sink recorded WAITING_FOR_APPROVAL: the slot and the
                    # lease go; a decision puts the execution back in the queue.
                    return
                if getattr(outcome, "is_paused", False):
                    paused = await record([phase_event(PAUSED)])
                    if paused.status.phase == PAUSED:
                        logger.info("execution %s paused", execution_id)
                        return
                    continue  # the pause was withdrawn meanwhile: go on
                events = [phase_event(COMPLETED)]
                if getattr(outcome, "is_step_limit_reached", False):
                    text = f"stopped after {request.max_steps} model calls (the step limit)"
                    events = [sink.system_message(text), phase_event(COMPLETED)]
                await record(events)
                return
        except asyncio.CancelledError:
            await self._end_cancelled(execution_id, sink)
            raise
        except (ModelError, ToolServerError, StigmerError) as error:
            await self._end_failed(execution_id, sink, _describe(error))
        except Exception as error:
            logger.exception("execution %s failed with an internal error", execution_id)
            await self._end_failed(execution_id, sink, f"internal error: {error}")
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if not is_stopped:
                await self.domains.execution_queue.release_lease(execution_id, self.owner)
            known_secrets.forget(execution_id)

    async def _end_cancelled(self, execution_id: str, sink: RecordingSink) -> None:
        reason = self._cancel_reasons.get(execution_id, "cancelled")
        with contextlib.suppress(StigmerError):
            if execution_id in self._stopped_by_server:
                await self.domains.execution_queue.end_abandoned(execution_id, reason)
                return
            await sink.flush()
            await self.domains.executions.record_events(
                execution_id, [phase_event(CANCELLED, reason)]
            )

    async def _end_failed(self, execution_id: str, sink: RecordingSink, reason: str) -> None:
        # A tool server's resolved command line, a model's 400 quoting a tool result.
        reason = sink.mask(reason)
        logger.info("execution %s failed: %s", execution_id, reason)
        try:
            await sink.flush()
            await self.domains.executions.record_events(
                execution_id, [sink.system_message(reason), phase_event(FAILED, reason)]
            )
        except (NotFound, FailedPrecondition):
            logger.info("execution %s ended elsewhere: %s", execution_id, reason)

    async def _renew(self, execution_id: str) -> None:
        interval = self.options.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            is_held = await self.domains.execution_queue.renew_lease(
                execution_id, self.owner, self.options.lease_seconds
            )
            if not is_held:
                logger.warning("lost the lease on execution %s; stopping it", execution_id)
                task = self._running.get(execution_id)
                if task is not None:
                    self._cancel_reasons[execution_id] = "the lease was lost"
                    task.cancel()
                return

    # -- reaper ------------------------------------------------------------

    def _is_running_here(self, lease: Lease) -> bool:
        return lease.owner == self.owner and lease.resource_id in self._running

    async def _reap_once(self) -> None:
        reaped = await self.domains.execution_queue.reap_expired_leases(
            is_alive=self._is_running_here
        )
        if reaped:
            logger.warning("Ended or re-queued %d executions whose worker was lost", reaped)
        for execution_id in await self.domains.execution_queue.list_active_without_lease():
            if execution_id not in self._running:
                await self.domains.execution_queue.end_abandoned(
                    execution_id, "worker lost: the execution was running without a lease"
                )

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.lease_seconds)
            try:
                await self._reap_once()
            except StigmerError as error:
                logger.warning("cannot reap expired leases: %s", error)


def _describe(error: Exception) -> str:
    if isinstance(error, ModelError):
        return f"model error: {error}"
    if isinstance(error, ToolServerError):
        return f"tool server error: {error}"
    return str(error)
