"""Waiting for a person survives the server (and on Temporal, every worker):
stopped, then killed with SIGKILL, while an execution waits, it still waits
once they are back, after a lease period has passed; a decision then
completes it with the tool's result. Both stores, both engines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.resources.execution_events import COMPLETED, WAITING_FOR_APPROVAL
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerProcess
from stigmer.testing.worker import WorkerProcess
from tests.agents import gated_tools_agent
from tests.executions.approvals import APPROVE, submit, tool_results_of, wait_for_approvals
from tests.waiting import wait_for_end, wait_until

LEASE_SECONDS = 2


@pytest.fixture(params=["embedded", "temporal"])
def engine(request: pytest.FixtureRequest) -> str:
    chosen: str = request.param
    return chosen


class Deployment:
    """The server, and on Temporal one worker, as processes that can be
    stopped or killed and started again on the same store."""

    def __init__(
        self, tmp_path: Path, store_url: str, model: ScriptedModel, engine: str, request: Any
    ) -> None:
        self.tmp_path = tmp_path
        self.store_url = store_url
        self.model_settings = {
            "LLM_PROVIDER": "openai",
            "LLM_MODEL": "scripted",
            "LLM_BASE_URL": model.base_url,
        }
        self.temporal: dict[str, str] = {}
        if engine == "temporal":
            temporal_server: TemporalDevServer = request.getfixturevalue("temporal_server")
            queue: str = request.getfixturevalue("task_queue")
            self.temporal = {
                "TEMPORAL_ADDRESS": temporal_server.address,
                "TEMPORAL_TASK_QUEUE": queue,
            }
        self.generation = 0

    @contextmanager
    def running(self) -> Iterator[tuple[ServerProcess, list[ServerProcess | WorkerProcess]]]:
        self.generation += 1
        home = self.tmp_path / f"home-{self.generation}"
        settings = {**self.model_settings, "LEASE_SECONDS": str(LEASE_SECONDS)}
        if self.temporal:
            settings.update({"ENGINE": "temporal", **self.temporal})
        with ExitStack() as stack:
            server = stack.enter_context(ServerProcess(home, self.store_url, settings))
            processes: list[ServerProcess | WorkerProcess] = [server]
            if self.temporal:
                worker = WorkerProcess(
                    self.tmp_path / f"worker-home-{self.generation}",
                    server.address,
                    self.temporal["TEMPORAL_ADDRESS"],
                    {
                        "TEMPORAL_TASK_QUEUE": self.temporal["TEMPORAL_TASK_QUEUE"],
                        **self.model_settings,
                    },
                )
                processes.append(stack.enter_context(worker))
            yield server, processes


def assert_still_waits_for_two_lease_periods(client: Client, execution_id: str) -> None:
    """Watches the execution for two lease periods of the restarted server
    (its reaper runs at start-up and every period): it never leaves its wait."""
    until = time.monotonic() + 2 * LEASE_SECONDS
    before = client.get_execution(execution_id).status.last_sequence

    def has_waited() -> bool:
        current = client.get_execution(execution_id)
        assert current.status.phase == WAITING_FOR_APPROVAL, current.status.error
        assert current.status.last_sequence == before
        assert [a.tool_call_id for a in current.status.pending_approvals] == ["c1"]
        return time.monotonic() > until

    wait_until(has_waited, what="two lease periods", within=LEASE_SECONDS * 10)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_waiting_execution_survives_a_stop_and_a_sigkill_and_completes_when_approved(
    tmp_path: Path,
    store_url: str,
    model: ScriptedModel,
    engine: str,
    request: pytest.FixtureRequest,
) -> None:
    model.add(
        Reply(content="adding", tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}, id="c1"),)),
        Reply(content="2 + 3 = 5"),
    )
    deployment = Deployment(tmp_path, store_url, model, engine, request)
    with deployment.running() as (server, _), Client(server.address) as client:
        client.apply(gated_tools_agent())
        execution_id = client.run("careful", "What is 2 + 3?").metadata.id
        wait_for_approvals(client, execution_id)
    # Stopped (SIGTERM) while it waits: started again, it still waits.
    with deployment.running() as (server, processes):
        with Client(server.address) as client:
            assert_still_waits_for_two_lease_periods(client, execution_id)
        for process in processes:
            process.kill()
    # Killed with SIGKILL while it waits: started again, it still waits,
    # and a decision completes it.
    with deployment.running() as (server, _), Client(server.address) as client:
        assert_still_waits_for_two_lease_periods(client, execution_id)
        assert len(model.requests) == 1
        submit(server.address, execution_id, "c1", APPROVE)
        final = wait_for_end(client, execution_id, within=60)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert call.status == execution_pb2.TOOL_CALL_STATUS_COMPLETED
    assert call.result == "5"
    assert tool_results_of(model.requests[1]) == {"c1": "5"}
    assert final.status.messages[-1].content == "2 + 3 = 5"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_cli_waits_across_a_restart_then_approve_and_reject_complete_the_runs(
    tmp_path: Path,
    store_url: str,
    model: ScriptedModel,
    engine: str,
    request: pytest.FixtureRequest,
) -> None:
    """The issue's acceptance flow, as a user types it: `run --no-follow`
    waits; a stop and start of the server (and worker) leaves it waiting;
    `approve` completes it with the tool's result; on another run `reject -m`
    completes it with the comment as what the model reads for that call."""
    model.add(
        Reply(content="adding", tool_calls=(ToolCallStep("add", {"a": 2, "b": 3}, id="c1"),)),
        Reply(content="2 + 3 = 5"),
        Reply(content="adding", tool_calls=(ToolCallStep("add", {"a": 4, "b": 4}, id="c9"),)),
        Reply(content="I did not add them"),
    )
    deployment = Deployment(tmp_path, store_url, model, engine, request)
    (tmp_path / "careful.yaml").write_text(gated_tools_agent())
    with deployment.running() as (server, _), Client(server.address) as client:
        stigmer = Cli.isolated(tmp_path / "cli", {"SERVER": server.address}, cwd=tmp_path)
        assert stigmer("apply", "-f", "careful.yaml").exit_code == 0
        started = stigmer("run", "careful", "What is 2 + 3?", "--no-follow")
        assert started.exit_code == 0, started.stderr
        first = started.stdout.strip()
        wait_for_approvals(client, first)
    with deployment.running() as (server, _), Client(server.address) as client:
        stigmer = Cli.isolated(tmp_path / "cli", {"SERVER": server.address}, cwd=tmp_path)
        assert client.get_execution(first).status.phase == WAITING_FOR_APPROVAL
        approved = stigmer("approve", first)
        assert approved.exit_code == 0, approved.stderr
        final = wait_for_end(client, first, within=60)
        assert final.status.phase == COMPLETED, final.status.error
        assert final.status.tool_calls[0].result == "5"
        assert tool_results_of(model.requests[1]) == {"c1": "5"}

        started = stigmer("run", "careful", "What is 4 + 4?", "--no-follow")
        assert started.exit_code == 0, started.stderr
        second = started.stdout.strip()
        wait_for_approvals(client, second)
        rejected = stigmer("reject", second, "-m", "not now")
        assert rejected.exit_code == 0, rejected.stderr
        final = wait_for_end(client, second, within=60)

    assert final.status.phase == COMPLETED, final.status.error
    (call,) = final.status.tool_calls
    assert call.status == execution_pb2.TOOL_CALL_STATUS_REJECTED
    assert tool_results_of(model.requests[3]) == {"c9": "not now"}
    assert final.status.messages[-1].content == "I did not add them"
