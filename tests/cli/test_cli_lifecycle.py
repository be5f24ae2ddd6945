"""`stigmer pause|resume|terminate|recover` against a real server and engine,
as a person at another shell uses them while `stigmer run` follows the
execution in a pipe: what each command prints, what the follower says, and
the exit codes (5 for TERMINATED, in run and logs alike)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stigmer.client import Client
from stigmer.resources.execution_events import COMPLETED, FAILED, PAUSED
from stigmer.testing.cli import COMMAND, Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import stdio_tools_agent
from tests.backends import engine_options
from tests.lifecycle_calls import GatedReplies
from tests.waiting import WAIT_SECONDS, wait_for_end, wait_until

ADD = ToolCallStep("add", {"a": 2, "b": 3}, id="call_add")
Gate = Callable[..., GatedReplies]


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


@pytest.fixture
def gate(model: ScriptedModel) -> Iterator[Gate]:
    made: list[GatedReplies] = []

    def make(*replies: Reply, gated: tuple[int, ...] = ()) -> GatedReplies:
        made.append(GatedReplies(model, list(replies), set(gated)))
        return made[-1]

    yield make
    for replies in made:
        replies.open_all()


@pytest.fixture
def follower(cli: Cli) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """`stigmer ARGS` in the background, piped, as a script runs it."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*COMMAND, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli.env,
            cwd=cli.cwd,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=WAIT_SECONDS)


def _started(client: Client, model: ScriptedModel) -> str:
    wait_until(lambda: len(model.requests) == 1, what="the first model call")
    (execution,) = client.list_executions()
    return str(execution.metadata.id)


def test_a_followed_run_announces_its_pause_and_ends_after_resume(
    cli: Cli, client: Client, model: ScriptedModel, gate: Gate, follower: Callable[..., Any]
) -> None:
    client.apply(stdio_tools_agent())
    answers = gate(Reply(tool_calls=(ADD,), content="Adding."), Reply(content="5"), gated=(1,))
    running = follower("run", "calculator", "2 + 3?")
    execution_id = _started(client, model)

    paused = cli("pause", execution_id, "--reason", "lunch")
    answers.open(1)
    wait_until(lambda: client.get_execution(execution_id).status.phase == PAUSED, what="the pause")
    listed = cli("get", "executions", "--phase", "paused", "-o", "name")
    described = cli("describe", "execution", execution_id)
    resumed = cli("resume", execution_id)
    stdout, stderr = running.communicate(timeout=WAIT_SECONDS)

    assert (paused.exit_code, paused.stdout) == (
        0,
        f"execution/{execution_id} pause requested (in_progress)\n",
    ), paused.stderr
    assert listed.stdout == f"execution/{execution_id}\n"
    assert "Phase:" in described.stdout and "PAUSED" in described.stdout
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stdout.startswith(f"execution/{execution_id} ")
    assert running.returncode == 0, stderr
    assert f"execution {execution_id} is paused; resume it: stigmer resume {execution_id}" in (
        stderr
    )
    assert "  tool add → 5" in stdout.splitlines()
    assert stdout.splitlines()[-1].startswith(f"COMPLETED ({execution_id}")


def test_terminate_ends_a_followed_run_with_exit_5_and_logs_says_the_same(
    cli: Cli, client: Client, model: ScriptedModel, gate: Gate, follower: Callable[..., Any]
) -> None:
    client.apply(stdio_tools_agent())
    gate(Reply(content="never"), gated=(1,))
    running = follower("run", "calculator", "2 + 3?")
    execution_id = _started(client, model)

    terminated = cli("terminate", execution_id, "--reason", "runaway")
    stdout, stderr = running.communicate(timeout=WAIT_SECONDS)
    replay = cli("logs", execution_id)
    again = cli("terminate", execution_id)

    assert (terminated.exit_code, terminated.stdout) == (
        0,
        f"execution/{execution_id} terminated\n",
    ), terminated.stderr
    assert running.returncode == 5, stderr
    assert stdout.splitlines()[-1].startswith(f"TERMINATED ({execution_id}")
    assert (replay.exit_code, replay.stdout) == (5, stdout)
    assert (again.exit_code, again.stdout) == (0, f"execution/{execution_id} terminated\n")


def test_recover_continues_a_failed_run_that_logs_f_then_follows_to_the_end(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ADD,), content="Adding."),
        Reply(status=400, content="the model is overloaded"),
        Reply(content="2 + 3 = 5"),
    )
    failed = cli("run", "calculator", "2 + 3?")
    (execution,) = client.list_executions()
    execution_id = execution.metadata.id

    recovered = cli("recover", execution_id)
    final = wait_for_end(client, execution_id)
    followed = cli("logs", "-f", execution_id)
    described = cli("describe", "execution", execution_id)

    assert failed.exit_code == 1
    assert execution.status.phase == FAILED
    assert recovered.exit_code == 0, recovered.stderr
    assert recovered.stdout.startswith(f"execution/{execution_id} ")
    assert final.status.phase == COMPLETED
    assert followed.exit_code == 0, followed.stderr
    assert "agent: 2 + 3 = 5" in followed.stdout
    assert "Recovered (1)" in described.stdout
    assert "overloaded" in described.stdout


@pytest.mark.parametrize(
    ("command", "phase"),
    [("resume", "COMPLETED"), ("recover", "COMPLETED"), ("pause", "COMPLETED")],
)
def test_a_change_from_a_phase_it_cannot_leave_exits_1_with_one_line(
    cli: Cli, client: Client, model: ScriptedModel, command: str, phase: str
) -> None:
    client.apply(stdio_tools_agent())
    model.default = Reply(content="done")
    assert cli("run", "calculator", "hi").exit_code == 0
    (execution,) = client.list_executions()

    refused = cli(command, execution.metadata.id)

    assert refused.exit_code == 1, refused.stdout
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert phase in refused.stderr
