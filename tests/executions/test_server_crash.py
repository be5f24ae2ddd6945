"""A server killed with executions in flight leaves no zombie: once one
lease period has passed after a restart, nothing is PENDING or IN_PROGRESS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.resources.execution_events import ACTIVE_PHASES, COMPLETED, FAILED
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerProcess
from tests.agents import PLAIN_AGENT
from tests.waiting import wait_until

LEASE_SECONDS = 2


def server_process(home: Path, store_url: str, model_url: str) -> ServerProcess:
    return ServerProcess(
        home,
        store_url,
        {
            "LLM_PROVIDER": "openai",
            "LLM_MODEL": "scripted",
            "LLM_BASE_URL": model_url,
            "LEASE_SECONDS": str(LEASE_SECONDS),
            "WORKERS": "4",
        },
    )


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
    tmp_path: Path, store_url: str, slow_then_fast_model: tuple[ScriptedModel, list[bool]]
) -> None:
    model, is_slow = slow_then_fast_model
    home = tmp_path / "home"
    home.mkdir()
    first = server_process(home, store_url, model.base_url)
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
    second = server_process(home, store_url, model.base_url)
    second.start()
    try:
        with Client(second.address) as client:

            def nothing_active() -> bool:
                return all(client.get_execution(i).status.phase not in ACTIVE_PHASES for i in ids)

            wait_until(nothing_active, what="no active execution", within=LEASE_SECONDS * 10)
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
