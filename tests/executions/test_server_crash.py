"""A server killed with executions in flight leaves no zombie: once one
lease period has passed after a restart, nothing is PENDING or IN_PROGRESS."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.resources.execution_events import ACTIVE_PHASES, COMPLETED, FAILED
from stigmer.testing.scripted_model import Reply, ScriptedModel
from tests.executions.conftest import PLAIN_AGENT, wait_until

LEASE_SECONDS = 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """`stigmer server` in the foreground, as its own process."""

    def __init__(self, home: Path, store: Path, model_url: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
        self.env.update(
            STIGMER_HOME=str(home),
            STIGMER_STORE=str(store),
            STIGMER_PORT=str(self.port),
            STIGMER_LLM_PROVIDER="openai",
            STIGMER_LLM_MODEL="scripted",
            STIGMER_LLM_BASE_URL=model_url,
            STIGMER_LEASE_SECONDS=str(LEASE_SECONDS),
            STIGMER_WORKERS="4",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = Path(self.env["STIGMER_HOME"]) / f"server-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stigmer.cli.main", "server"],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        with Client(self.address) as client:
            wait_until(lambda: client.is_serving(wait_seconds=0.5), what="the server to serve")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def slow_then_fast_model() -> Iterator[tuple[ScriptedModel, list[bool]]]:
    is_slow = [True]

    def answer(_: dict[str, object]) -> Reply:
        return Reply(content="late", delay_seconds=120) if is_slow[0] else Reply(content="done")

    with ScriptedModel() as model:
        model.reply_with(answer)
        yield model, is_slow


@pytest.mark.slow
def test_sigkill_with_executions_in_flight_leaves_no_zombie_after_a_lease_period(
    tmp_path: Path, slow_then_fast_model: tuple[ScriptedModel, list[bool]]
) -> None:
    model, is_slow = slow_then_fast_model
    home, store = tmp_path / "home", tmp_path / "stigmer.db"
    home.mkdir()
    first = ServerProcess(home, store, model.base_url)
    first.start()
    try:
        with Client(first.address) as client:
            client.apply(PLAIN_AGENT)
            ids = [client.run("greeter", f"question {i}").metadata.id for i in range(6)]
            wait_until(lambda: len(model.requests) >= 4, what="four model calls in flight")
            phases = {client.get_execution(i).status.phase for i in ids}
            assert phases <= ACTIVE_PHASES
        first.kill()
    finally:
        first.stop()

    is_slow[0] = False
    second = ServerProcess(home, store, model.base_url)
    second.start()
    try:
        with Client(second.address) as client:

            def nothing_active() -> bool:
                return all(client.get_execution(i).status.phase not in ACTIVE_PHASES for i in ids)

            wait_until(nothing_active, deadline=LEASE_SECONDS * 10, what="no active execution")
            finals = [client.get_execution(i) for i in ids]
    finally:
        second.stop()
    for final in finals:
        assert final.status.phase in (COMPLETED, FAILED)
        if final.status.phase == FAILED:
            assert "worker lost" in final.status.error
    # Nothing had happened in them yet (the model never answered): re-queued and run.
    assert [f.status.phase for f in finals] == [COMPLETED] * 6
    assert "Ended or re-queued" in second.log.read_text()
