"""The Temporal engine: the server starts one workflow per execution and
`stigmer worker` processes, anywhere, run its activities.

The server keeps the store the single source of truth. Its dispatcher claims
PENDING executions exactly as the embedded engine does (same queue, same
busy-session rule, IN_PROGRESS under a lease owned by "temporal") and starts
the execution's workflow, whose id is the execution id: a repeated start
(after a crash between claim and start, or a second server) finds the
running workflow instead of starting another. A keeper renews the leases of
executions whose workflow runs and hands back the others: a workflow that
is gone or closed without recording an end is re-queued when nothing of it
happened, else the execution FAILS with the workflow's fate, so nothing
stays IN_PROGRESS forever. Stopping the server stops none of this: the
workflows go on, and the next server adopts their leases.

Cancel signals the reason to the workflow and cancels it; the workflow's
running activity gets the cancellation in its next heartbeat. Terminate
cancels it the same way without waiting (the execution is TERMINATED in the
store already, so the workflow's last reports are refused).

A paused execution's workflow waits for a CONTINUE signal with no activity
running. A claim of an execution that continues (resumed or recovered)
starts its workflow with the CONTINUE signal (signal-with-start): a waiting
workflow goes on from where it stopped, and a closed one (a recovered
execution's) runs again from the recorded conversation. The workflow's memo
holds the attempt it runs for, so a recovered execution's new run never
mistakes the earlier attempt's run, still closing, for its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from stigmer.api.v1 import execution_pb2
from stigmer.domain.registry import Domains
from stigmer.engine.lease_owners import TEMPORAL_LEASE_OWNER
from stigmer.engine.options import EngineOptions
from stigmer.engine.temporal_connection import connect
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.engine.temporal_workflow import (
    CANCEL_REASON_SIGNAL,
    CONTINUE_SIGNAL,
    DEFAULT_TASK_QUEUE,
    WORKFLOW_NAME,
    WorkflowInput,
)
from stigmer.errors import StigmerError, Unavailable
from stigmer.store.base import Lease
from stigmer.tasks import cancel_tasks, guarded_task

logger = logging.getLogger(__name__)
OWNER = TEMPORAL_LEASE_OWNER
WORKERS_CHECK_SECONDS = 60.0
# The workflow's memo key for how many times its execution was recovered.
ATTEMPT_MEMO = "stigmer-attempt"
# How long a recovered execution's earlier workflow run gets to close.
EARLIER_ATTEMPT_CLOSE_SECONDS = 10.0


@dataclass(frozen=True)
class TemporalOptions:
    address: str = ""  # host:port; empty: a managed dev server in dev_server_dir
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    heartbeat_seconds: float = 30.0
    dev_server_dir: Path | None = None
    connect_timeout_seconds: float = 30.0


class TemporalEngine:
    def __init__(self, domains: Domains, options: EngineOptions, temporal: TemporalOptions) -> None:
        self.domains = domains
        self.options = options
        self.temporal = temporal
        self._client: Client | None = None
        self._dev_server: TemporalDevServer | None = None
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Held from a claim until its workflow started: the keeper takes it
        # before it ends an execution whose workflow it did not find.
        self._dispatching = asyncio.Lock()
        self._workers_checked_at = -math.inf

    @property
    def address(self) -> str:
        if self._dev_server is not None:
            return self._dev_server.address
        return self.temporal.address

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("the Temporal engine is not started")
        return self._client

    # -- ExecutionSignals --------------------------------------------------

    def execution_enqueued(self, execution_id: str) -> None:
        self._wakeup.set()

    async def cancel_running(self, execution_id: str, reason: str) -> bool:
        handle = self.client.get_workflow_handle(execution_id)
        try:
            await handle.signal(CANCEL_REASON_SIGNAL, reason)
            await handle.cancel()
        except RPCError as error:
            # Gone or closed: the keeper ends the execution (CANCELLED, as asked).
            logger.info("cannot cancel the workflow of %s: %s", execution_id, error)
            return False
        return True

    async def terminate_running(self, execution_id: str, reason: str) -> bool:
        # Cancelled rather than terminated in Temporal: the workflow's end
        # then closes the execution's tool servers on the workers.
        return await self.cancel_running(execution_id, reason)

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Connects to Temporal (starting the managed dev server first when no
        address is set) and starts dispatching.

        Raises:
            Unavailable: Temporal cannot be reached.
            FailedPrecondition: a dev server is needed and the CLI is missing.
        """
        if not self.temporal.address:
            folder = self.temporal.dev_server_dir
            if folder is None:
                raise Unavailable("no Temporal address and no folder for a managed dev server")
            self._dev_server = TemporalDevServer(folder, namespaces=(self.temporal.namespace,))
            await asyncio.to_thread(self._dev_server.start)
            logger.info("Started a Temporal dev server on %s", self._dev_server.address)
        try:
            self._client = await connect(
                self.address,
                self.temporal.namespace,
                wait_seconds=self.temporal.connect_timeout_seconds,
            )
            await self._keep_once()
            await self._wake_running()
        except BaseException:
            await self._stop_dev_server()
            raise
        self._tasks = [
            guarded_task("stigmer-temporal-dispatcher", self._dispatch),
            guarded_task("stigmer-temporal-keeper", self._keep_forever),
        ]
        logger.info(
            "Temporal engine started: %s, namespace %s, task queue %s",
            self.address,
            self.temporal.namespace,
            self.temporal.task_queue,
        )

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        self._tasks = []
        await self._stop_dev_server()

    async def _stop_dev_server(self) -> None:
        if self._dev_server is not None:
            await asyncio.to_thread(self._dev_server.stop)
            self._dev_server = None

    # -- dispatching -------------------------------------------------------

    async def _dispatch(self) -> None:
        queue = self.domains.execution_queue
        while True:
            self._wakeup.clear()
            async with self._dispatching:
                try:
                    execution = await queue.claim_next(OWNER, self.options.lease_seconds)
                except StigmerError as error:
                    # The store is briefly unreachable: executions wait in it.
                    logger.warning("cannot claim executions: %s", error)
                    execution = None
                is_started = execution is None or await self._start_workflow_or_abandon(execution)
            if execution is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.options.poll_seconds):
                        await self._wakeup.wait()
                continue
            if not is_started:
                # Temporal is unreachable: the execution is back in the queue;
                # wait before claiming again rather than spin.
                await asyncio.sleep(self.options.poll_seconds)

    def workflow_input(self, execution_id: str) -> WorkflowInput:
        return WorkflowInput(
            execution_id=execution_id,
            max_steps=self.options.max_steps,
            heartbeat_seconds=self.temporal.heartbeat_seconds,
        )

    async def start_or_find_workflow(
        self, execution_id: str, turn: int = -1, *, attempt: int = 0
    ) -> str:
        """Starts the execution's workflow, or finds the one already running;
        returns the run id. Either way it gets the CONTINUE signal for `turn`
        (the AI message whose calls were all decided; -1 when none was): a
        workflow waiting for those decisions, or paused, goes on, atomically
        with the claim's outcome being acted on. `attempt`: how many times
        the execution was recovered; a recovered execution's workflow of an
        earlier attempt has ended it FAILED, and a new run of it starts.

        Raises:
            RPCError: Temporal cannot be reached or refused the start.
            WorkflowAlreadyStartedError: the workflow has already ended, and
                its id may not be reused.
        """
        if attempt:
            await self._finish_earlier_attempt(execution_id, attempt)
        handle = await self.client.start_workflow(
            WORKFLOW_NAME,
            self.workflow_input(execution_id),
            id=execution_id,
            task_queue=self.temporal.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            # A workflow that failed or was terminated without ending its
            # execution may be started again once the execution is re-queued;
            # a recovered one's ended FAILED and runs again.
            id_reuse_policy=(
                WorkflowIDReusePolicy.ALLOW_DUPLICATE
                if attempt
                else WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
            ),
            memo={ATTEMPT_MEMO: attempt},
            start_signal=CONTINUE_SIGNAL,
            start_signal_args=[turn],
        )
        return handle.result_run_id or ""

    async def _finish_earlier_attempt(self, execution_id: str, attempt: int) -> None:
        """Waits for the workflow run of an earlier attempt to close.

        Recover is accepted as soon as the store says FAILED, which the
        workflow records in its last activity; the run itself closes a moment
        later. Started before that, the new attempt would find the old run
        still RUNNING and take it for its own, and the keeper would then see
        it complete without ending the execution. A run of this attempt (the
        server restarted after starting it) is left alone. One that does not
        close (no worker runs its last workflow task) is terminated: its
        execution's end is recorded and its resources were released by then.
        """
        handle = self.client.get_workflow_handle(execution_id)
        try:
            description = await handle.describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return
            raise
        if description.status != WorkflowExecutionStatus.RUNNING:
            return
        if await description.memo_value(ATTEMPT_MEMO, 0, type_hint=int) >= attempt:
            return
        try:
            async with asyncio.timeout(EARLIER_ATTEMPT_CLOSE_SECONDS):
                await handle.result()
        except TimeoutError:
            await handle.terminate(reason=f"superseded by recovery attempt {attempt}")
        except WorkflowFailureError:
            pass  # closed, which is all that is waited for

    async def _start_workflow_or_abandon(self, execution: execution_pb2.AgentExecution) -> bool:
        """Starts (or finds) the workflow; when that fails, ends the execution
        as abandoned and returns False."""
        execution_id = execution.metadata.id
        try:
            await self.start_or_find_workflow(
                execution_id, _last_turn(execution), attempt=len(execution.status.attempts)
            )
            return True
        except (RPCError, WorkflowAlreadyStartedError) as error:
            logger.warning("cannot start the workflow of %s: %s", execution_id, error)
            await self.domains.execution_queue.end_abandoned(
                execution_id, f"its Temporal workflow could not be started: {error}"
            )
            return False

    async def _wake_running(self) -> None:
        """Signals the workflow of every execution this engine runs: a server
        stopped between claiming a resumed execution and signalling its
        waiting workflow left it waiting (a signal too many costs one look)."""
        for execution_id, lease in await self.domains.execution_queue.list_active_leases():
            if lease is None or lease.owner != OWNER:
                continue
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(execution_id).signal(CONTINUE_SIGNAL, -1)

    # -- keeping leases ----------------------------------------------------

    async def _keep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.lease_seconds / 3)
            try:
                await self._keep_once()
            except (RPCError, StigmerError) as error:
                # Temporal or the store is briefly unreachable: leases stay as
                # they are, and the next round tries again.
                logger.warning("cannot check the executions' workflows: %s", error)

    async def _workflow_fate(self, execution_id: str) -> str:
        """'' while the workflow runs, else what became of it, in words."""
        try:
            description = await self.client.get_workflow_handle(execution_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return "its Temporal workflow does not exist"
            raise
        status = description.status
        if status == WorkflowExecutionStatus.RUNNING:
            return ""
        name = status.name.lower().replace("_", " ") if status else "closed"
        return f"its Temporal workflow ended ({name}) without ending the execution"

    async def has_workers(self) -> bool:
        """Whether any worker polls the task queue for activities (Temporal
        remembers pollers for a few minutes after they go)."""
        request = DescribeTaskQueueRequest(
            namespace=self.temporal.namespace,
            task_queue=TaskQueue(name=self.temporal.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
        response = await self.client.workflow_service.describe_task_queue(request)
        return bool(response.pollers)

    async def _warn_without_workers(self, waiting: int) -> None:
        """Says why executions do not move when nothing runs them; asks
        Temporal at most once a minute, not every round."""
        now = time.monotonic()
        if now - self._workers_checked_at < WORKERS_CHECK_SECONDS:
            return
        self._workers_checked_at = now
        try:
            if await self.has_workers():
                return
        except RPCError as error:  # a hint is not worth failing a round for
            logger.info("cannot ask Temporal for the task queue's workers: %s", error)
            return
        logger.warning(
            "%d executions wait for a worker: no `stigmer worker` polls task queue %s "
            "(Temporal %s, namespace %s); start one with "
            "`stigmer worker --server HOST:PORT --temporal-address %s`",
            waiting,
            self.temporal.task_queue,
            self.address,
            self.temporal.namespace,
            self.address,
        )

    async def _keep_once(self) -> None:
        queue = self.domains.execution_queue
        held = 0
        for execution_id, lease in await queue.list_active_leases():
            if lease is None or lease.owner != OWNER:
                continue
            held += 1
            if not await self._workflow_fate(execution_id):
                await queue.renew_lease(execution_id, OWNER, self.options.lease_seconds)
                continue
            async with self._dispatching:
                # Asked again with no start in flight: it may have been
                # claimed and started between the listing and the first ask.
                fate = await self._workflow_fate(execution_id)
                if fate:
                    await queue.end_abandoned(execution_id, fate)
        if held:
            await self._warn_without_workers(held)
        # Leases of another engine (an embedded server ran on this store before).
        await queue.reap_expired_leases(is_alive=_is_temporal)
        for execution_id in await queue.list_active_without_lease():
            await queue.end_abandoned(
                execution_id, "worker lost: the execution was running without a lease"
            )


def _last_turn(execution: execution_pb2.AgentExecution) -> int:
    """The index of the execution's last AI message, -1 before any."""
    messages = execution.status.messages
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].type == execution_pb2.MESSAGE_TYPE_AI:
            return index
    return -1


def _is_temporal(lease: Lease) -> bool:
    return lease.owner == OWNER
