"""A worker process: polls the Temporal task queue for execution workflows and
their activities, and talks to the Stigmer server for everything else.

It needs only two addresses, the Stigmer server's and Temporal's, so it runs
on any machine that reaches both. Several workers on one task queue share
the executions; a worker that dies loses its running activities to the
workflow's retry policies (see stigmer.engine.temporal_workflow).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from stigmer.client import AsyncClient
from stigmer.engine.temporal_connection import connect
from stigmer.engine.temporal_workflow import AgentExecutionWorkflow
from stigmer.errors import InvalidArgument, PermissionDenied
from stigmer.runtime.contract import ContextSettings, ModelSettings
from stigmer.runtime.tool_results import DEFAULT_MAX_BYTES
from stigmer.tasks import cancel_tasks, guarded_task
from stigmer.worker.activities import ExecutionActivities
from stigmer.worker.server_api import WorkerApiClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    server: str  # the Stigmer server, host:port
    temporal_address: str
    namespace: str
    task_queue: str
    model: ModelSettings  # the defaults; an agent or execution may name another model
    max_concurrent_activities: int = 8
    # The CA that verifies the server (TLS); None: the configured one, if any.
    tls_ca: str | None = None
    max_tool_result_bytes: int = DEFAULT_MAX_BYTES  # see runtime/tool_results.py
    # The context window and its summaries (runtime/context_window.py).
    context: ContextSettings = field(default_factory=ContextSettings)
    # What Temporal records as the worker of each activity it runs.
    identity: str = field(
        default_factory=lambda: f"stigmer-worker/{socket.gethostname()}/{os.getpid()}"
    )


async def check_server_access(server: AsyncClient) -> None:
    """Fails at start, not on the first activity, when the server cannot be
    reached or verified (Unavailable) or refuses the token (Unauthenticated).
    The token is tried on GetRunInputs of no execution: a worker token is
    refused that execution (PERMISSION_DENIED), a server without auth finds
    the empty id invalid; either way the token was accepted."""
    await server.check_reachable()
    with contextlib.suppress(PermissionDenied, InvalidArgument):
        await WorkerApiClient(server).run_inputs("")


async def run_worker(
    options: WorkerOptions, stop: asyncio.Event, *, ready: Callable[[], None] | None = None
) -> None:
    """Runs until `stop` is set, then lets running activities finish briefly;
    calls `ready` once it polls Temporal.

    Raises:
        Unavailable: the Stigmer server or Temporal cannot be reached.
        Unauthenticated: the server refuses the worker's token.
    """
    async with AsyncClient(options.server, tls_ca=options.tls_ca) as server:
        await check_server_access(server)
        temporal = await connect(options.temporal_address, options.namespace)
        # The model SDKs take seconds to import: off the event loop, before the
        # first model call would pay for them.
        await asyncio.to_thread(importlib.import_module, "stigmer.runtime.providers")
        activities = ExecutionActivities(
            WorkerApiClient(server),
            options.model,
            max_tool_result_bytes=options.max_tool_result_bytes,
            context=options.context,
        )
        worker = Worker(
            temporal,
            task_queue=options.task_queue,
            workflows=[AgentExecutionWorkflow],
            activities=activities.all(),
            max_concurrent_activities=options.max_concurrent_activities,
            identity=options.identity,
            # The workflow module imports only temporalio and the standard
            # library; Stigmer's package root (the SDK, gRPC) need not be
            # re-imported into every workflow's sandbox.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules("stigmer")
            ),
            graceful_shutdown_timeout=timedelta(seconds=5),
        )
        logger.info(
            "Stigmer worker %s: server %s, Temporal %s (namespace %s, task queue %s)",
            options.identity,
            options.server,
            options.temporal_address,
            options.namespace,
            options.task_queue,
        )
        sweeper = guarded_task(
            "stigmer-worker-tool-server-sweeper", activities.tool_boxes.close_idle_forever
        )
        try:
            async with worker:
                if ready is not None:
                    ready()
                await stop.wait()
        finally:
            await cancel_tasks([sweeper])
            await activities.aclose()
