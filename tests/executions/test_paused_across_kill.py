"""A paused execution is durable: `kill -9` of the server (and, on Temporal,
of the worker) while it is paused loses nothing, a restarted server does not
reap it as lost, and Resume continues it where it stopped."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.resources.execution_events import COMPLETED, PAUSED
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerProcess
from stigmer.testing.worker import WorkerProcess
from tests.agents import stdio_tools_agent
from tests.lifecycle_calls import GatedReplies, lifecycle
from tests.waiting import wait_for_end, wait_until

pytestmark = pytest.mark.slow
LEASE_SECONDS = 2
ADD = ToolCallStep("add", {"a": 2, "b": 3}, id="call_add")


class Processes:
    """The server process, and on Temporal its worker process, of one life."""

    def __init__(self, home: Path, store_url: str, settings: dict[str, str], temporal: str) -> None:
        self.server = ServerProcess(home, store_url, settings)
        self.worker: WorkerProcess | None = None
        self._home, self._settings, self._temporal = home, settings, temporal

    def start(self) -> None:
        self.server.start()
        if self._temporal:
            self.worker = WorkerProcess(
                self._home / "worker", self.server.address, self._temporal, self._settings
            )
            self.worker.start()

    def kill(self) -> None:
        if self.worker is not None:
            self.worker.kill()
        self.server.kill()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.server.stop()


@contextlib.contextmanager
def running(
    home: Path, store_url: str, settings: dict[str, str], temporal: str
) -> Iterator[Processes]:
    processes = Processes(home, store_url, settings, temporal)
    try:
        processes.start()
        yield processes
    finally:
        processes.stop()


def test_a_paused_execution_survives_kill_9_and_resumes_after_the_restart(
    tmp_path: Path,
    store_url: str,
    model: ScriptedModel,
    engine: str,
    request: pytest.FixtureRequest,
) -> None:
    settings = {
        "LLM_PROVIDER": "openai",
        "LLM_MODEL": "scripted",
        "LLM_BASE_URL": model.base_url,
        "LEASE_SECONDS": str(LEASE_SECONDS),
    }
    temporal = ""
    if engine == "temporal":
        temporal_server: TemporalDevServer = request.getfixturevalue("temporal_server")
        temporal = temporal_server.address
        settings |= {
            "ENGINE": "temporal",
            "TEMPORAL_ADDRESS": temporal,
            "TEMPORAL_TASK_QUEUE": request.getfixturevalue("task_queue"),
        }
    home = tmp_path / "home"
    answers = GatedReplies(model, [Reply(tool_calls=(ADD,)), Reply(content="5")], {1})
    try:
        with running(home, store_url, settings, temporal) as first:
            with Client(first.server.address) as client:
                client.apply(stdio_tools_agent())
                execution_id = client.run("calculator", "2 + 3?").metadata.id
                wait_until(lambda: len(model.requests) == 1, what="the first model call")
                lifecycle(first.server.address, "Pause", execution_id)
                answers.open(1)
                wait_until(
                    lambda: client.get_execution(execution_id).status.phase == PAUSED,
                    what="the execution to pause",
                )
            first.kill()
    finally:
        answers.open_all()

    with (
        running(home, store_url, settings, temporal) as second,
        Client(second.server.address) as client,
    ):
        # The restarted server reaped at start: a paused execution is not lost.
        paused = client.get_execution(execution_id)
        assert paused.status.phase == PAUSED
        (call,) = paused.status.tool_calls
        assert call.status == execution_pb2.TOOL_CALL_STATUS_PENDING
        assert list(client.check().violations) == []

        lifecycle(second.server.address, "Resume", execution_id)
        final = wait_for_end(client, execution_id)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert (call.result, call.status) == ("5", execution_pb2.TOOL_CALL_STATUS_COMPLETED)
    assert len(model.requests) == 2
    told = model.requests[1]["messages"][-1]
    assert (told["tool_call_id"], told["content"]) == ("call_add", "5")
