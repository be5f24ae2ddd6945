"""Scale-out as a user types it: `stigmer server` on PostgreSQL and Temporal
in one process, `stigmer worker` in another, `stigmer run` in a third; and the
local convenience of a server that manages its own Temporal dev server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stigmer.engine.temporal_dev_server import TemporalDevServer, managed_address
from stigmer.local_ports import free_local_port
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerProcess
from stigmer.testing.worker import WorkerProcess
from tests.agents import PLAIN_AGENT, stdio_tools_agent

pytestmark = pytest.mark.slow


def _model_settings(model: ScriptedModel) -> dict[str, str]:
    return {"LLM_PROVIDER": "openai", "LLM_MODEL": "scripted", "LLM_BASE_URL": model.base_url}


def _cli(home: Path, server: str, cwd: Path) -> Cli:
    return Cli.isolated(home, {"SERVER": server}, cwd=cwd)


def test_server_on_postgres_and_temporal_with_a_worker_elsewhere_runs_to_completed(
    postgres_url: str,
    model: ScriptedModel,
    temporal_server: TemporalDevServer,
    task_queue: str,
    tmp_path: Path,
) -> None:
    model.add(
        Reply(tool_calls=(ToolCallStep("add", {"a": 20, "b": 22}),)),
        Reply(content="20 + 22 = 42"),
    )
    server_home, worker_home = tmp_path / "server-home", tmp_path / "worker-home"
    settings = {
        "ENGINE": "temporal",
        "TEMPORAL_ADDRESS": temporal_server.address,
        "TEMPORAL_TASK_QUEUE": task_queue,
    }
    # The worker knows only the two addresses (and its model); the server
    # process has no model settings at all: it never calls a model here.
    with (
        ServerProcess(server_home, postgres_url, settings) as server,
        WorkerProcess(
            worker_home,
            server.address,
            temporal_server.address,
            {"TEMPORAL_TASK_QUEUE": task_queue, **_model_settings(model)},
        ),
    ):
        cli = _cli(tmp_path / "cli-home", server.address, tmp_path)
        manifest = tmp_path / "calculator.yaml"
        manifest.write_text(stdio_tools_agent())
        assert cli("apply", "-f", str(manifest)).exit_code == 0

        run = cli("run", "calculator", "What is 20 + 22?")

        assert run.exit_code == 0, run.stdout + run.stderr
        assert "20 + 22 = 42" in run.stdout
        assert "COMPLETED" in run.stdout
        assert cli("check").exit_code == 0


def test_server_without_a_temporal_address_manages_a_dev_server(
    model: ScriptedModel, tmp_path: Path
) -> None:
    model.add(Reply(content="hello from a managed Temporal"))
    home = tmp_path / "home"
    port = free_local_port()
    cli = _cli(home, f"127.0.0.1:{port}", tmp_path)
    cli.env["STIGMER_PORT"] = str(port)

    started = cli("server", "start", "--engine", "temporal")
    try:
        assert started.exit_code == 0, started.stdout + started.stderr
        address = managed_address(home)
        assert address.startswith("127.0.0.1:")
        assert (home / "temporal" / "temporal.db").exists()
        # A worker on this machine finds the managed server by itself.
        with WorkerProcess(home, f"127.0.0.1:{port}", "", _model_settings(model)):
            cli("apply", "-f", "-", stdin=PLAIN_AGENT)
            run = cli("run", "greeter", "hi")
        assert run.exit_code == 0, run.stdout + run.stderr
        assert "hello from a managed Temporal" in run.stdout
    finally:
        stopped = cli("server", "stop")
    assert stopped.exit_code == 0, stopped.stderr
    # Stopping the server stopped its Temporal too.
    assert managed_address(home) == ""
    assert not _listening(address)


def test_worker_without_any_temporal_address_is_a_clear_error(tmp_path: Path) -> None:
    finished = Cli.isolated(tmp_path / "home")("worker")

    assert finished.exit_code == 1
    assert "no Temporal address" in finished.stderr
    assert "--temporal-address" in finished.stderr


def test_server_refuses_an_unknown_engine(tmp_path: Path) -> None:
    cli = _cli(tmp_path / "home", "127.0.0.1:1", tmp_path)

    refused = cli("server", "--engine", "celery")

    assert refused.exit_code == 2
    assert "engine" in refused.stderr and "embedded or temporal" in refused.stderr


def _listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, int(port))) == 0
