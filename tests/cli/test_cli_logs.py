"""`stigmer logs ID` replays exactly what the live view printed.

Each test captures what `stigmer run` printed while it followed an
execution (piped, as a script sees it) and compares it with what `stigmer
logs ID` prints afterwards for the same execution: the same lines in the
same order, tool arguments and the final status line included, and the
same exit code (0 COMPLETED, 1 FAILED, 4 CANCELLED).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.resources.execution_events import CANCELLED
from stigmer.testing.cli import COMMAND, Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.backends import engine_options
from tests.waiting import WAIT_SECONDS, wait_for_end, wait_until


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


def _only_execution(client: Client) -> str:
    (execution,) = client.list_executions()
    return str(execution.metadata.id)


def test_logs_replays_a_run_with_tool_calls_line_for_line(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(
            content="Let me work that out.",
            tool_calls=(
                ToolCallStep("add", {"a": 2, "b": 3}),
                ToolCallStep("echo", {"text": "five"}),
            ),
        ),
        Reply(tool_calls=(ToolCallStep("fail", {"message": "no luck"}),)),
        Reply(content="2 + 3 = 5, said twice."),
    )

    live = cli("run", "calculator", "What is 2 + 3?")
    execution_id = _only_execution(client)
    replay = cli("logs", execution_id)
    followed = cli("logs", "-f", execution_id)

    assert live.exit_code == 0, live.stderr
    lines = live.stdout.splitlines()
    assert lines[:7] == [
        "you: What is 2 + 3?",
        "agent: Let me work that out.",
        '  tool add({"a":2,"b":3})',
        "  tool add → 5",
        '  tool echo({"text":"five"})',
        "  tool echo → five",
        '  tool fail({"message":"no luck"})',
    ]
    assert lines[7] == "  tool fail failed: Error executing tool fail: no luck"
    assert lines[8] == "agent: 2 + 3 = 5, said twice."
    assert lines[9].startswith(f"COMPLETED ({execution_id}, tokens in/out 30/15, ")
    assert len(lines) == 10
    assert (replay.exit_code, replay.stdout) == (0, live.stdout)
    assert (followed.exit_code, followed.stdout) == (0, live.stdout)
    assert replay.stderr == ""


def test_logs_of_a_failed_run_prints_the_same_and_exits_1(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.default = Reply(status=400, content="the model refuses")

    live = cli("run", "greeter", "hi")
    replay = cli("logs", _only_execution(client))

    assert live.exit_code == 1, live.stdout
    assert "FAILED" in live.stdout.splitlines()[-1]
    assert (replay.exit_code, replay.stdout) == (1, live.stdout)


def test_logs_of_a_run_cancelled_while_a_tool_runs_prints_the_same_and_exits_4(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.add(Reply(tool_calls=(ToolCallStep("sleep", {"seconds": 60}),)))
    running = subprocess.Popen(
        [*COMMAND, "run", "calculator", "sleep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
        cwd=cli.cwd,
    )
    try:

        def is_tool_running() -> bool:
            executions = client.list_executions()
            return bool(executions) and any(
                call.status == execution_pb2.TOOL_CALL_STATUS_RUNNING
                for call in client.get_execution(executions[0].metadata.id).status.tool_calls
            )

        wait_until(is_tool_running, what="the sleep tool to run")
        execution_id = _only_execution(client)
        client.cancel(execution_id)
        stdout, stderr = running.communicate(timeout=WAIT_SECONDS)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert wait_for_end(client, execution_id).status.phase == CANCELLED

    replay = cli("logs", execution_id)

    assert running.returncode == 4, stderr
    lines = stdout.splitlines()
    assert lines[:3] == ["you: sleep", '  tool sleep({"seconds":60})', "  tool sleep interrupted"]
    assert lines[3].startswith(f"CANCELLED ({execution_id}")
    assert (replay.exit_code, replay.stdout) == (4, stdout)


def test_logs_of_a_running_execution_prints_what_there_is_and_says_it_goes_on(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.add(Reply(content="Hello.", delay_seconds=WAIT_SECONDS))
    execution_id = client.run("greeter", "hi").metadata.id
    wait_until(
        lambda: len(client.get_execution(execution_id).status.messages) == 2,
        what="the model's turn to begin",
    )

    replay = cli("logs", execution_id)

    assert replay.exit_code == 0, replay.stderr
    assert replay.stdout == "you: hi\n"
    assert replay.stderr == "(IN_PROGRESS; follow it with -f)\n"
    client.cancel(execution_id)
    assert wait_for_end(client, execution_id).status.phase == CANCELLED
