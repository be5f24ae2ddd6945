"""A server whose engine talks to the scripted model over real HTTP, on each
engine; the agents it runs are in tests/agents.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.engine.temporal_engine import TemporalOptions
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread
from stigmer.testing.worker import WorkerThread
from tests.backends import ENGINES, HEARTBEAT_SECONDS, engine_options, model_settings


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that takes the `server` runs on both engines, as
    `[embedded]` and `[temporal]`: what a user sees must not depend on it."""
    chosen: str = request.param
    return chosen


@pytest.fixture
def server(
    store_url: str, model: ScriptedModel, engine: str, request: pytest.FixtureRequest
) -> Iterator[ServerThread]:
    """The server on the test's engine; on Temporal, with one worker (on a
    thread of the test process) for its activities."""
    options = engine_options(model.base_url)
    if engine == "embedded":
        with ServerThread(store_url, engine=options) as running:
            yield running
        return
    temporal_server: TemporalDevServer = request.getfixturevalue("temporal_server")
    queue: str = request.getfixturevalue("task_queue")
    temporal = TemporalOptions(
        address=temporal_server.address, task_queue=queue, heartbeat_seconds=HEARTBEAT_SECONDS
    )
    with (
        ServerThread(store_url, engine=options, temporal=temporal) as running,
        WorkerThread(
            running.address,
            temporal_server.address,
            model_settings(model.base_url),
            task_queue=queue,
        ),
    ):
        yield running
