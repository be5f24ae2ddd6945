"""`stigmer approve|reject|skip`, the lifecycle commands and `get --phase`
for the new phases, against a real server: what the command settles on its
own side (which call, the arguments, the phase names) before asking it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stigmer.client import Client
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT
from tests.backends import engine_options


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


@pytest.fixture
def completed_id(cli: Cli, client: Client, model: ScriptedModel) -> str:
    client.apply(PLAIN_AGENT)
    model.default = Reply(content="Hello!")
    done = cli("run", "greeter", "hi")
    assert done.exit_code == 0, done.stderr
    (execution,) = client.list_executions()
    return str(execution.metadata.id)


@pytest.mark.parametrize("command", ["approve", "reject", "skip"])
def test_deciding_on_an_execution_that_waits_for_nothing_exits_1_naming_its_phase(
    cli: Cli, completed_id: str, command: str
) -> None:
    done = cli(command, completed_id)

    assert done.exit_code == 1, done.stdout
    assert done.stderr.strip() == (
        f"error: execution {completed_id} is COMPLETED: it waits for no approval"
    )


def test_an_unknown_execution_is_not_found(cli: Cli) -> None:
    done = cli("approve", "exe-00000000000000000000000000")

    assert done.exit_code == 1
    assert "not found" in done.stderr.lower()
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--args", "{not json"], "invalid JSON"),
        (["--args", "[1, 2]"], "must be a JSON object"),
        (["--all", "--args", "{}"], "cannot go with --all"),
    ],
)
def test_bad_edited_arguments_exit_2_with_one_line(
    cli: Cli, completed_id: str, arguments: list[str], message: str
) -> None:
    done = cli("approve", completed_id, "call_1", *arguments)

    assert done.exit_code == 2, done.stdout
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    "command", ["approve", "reject", "skip", "pause", "resume", "terminate", "recover"]
)
def test_a_decision_or_lifecycle_command_without_an_execution_is_a_usage_error(
    cli: Cli, command: str
) -> None:
    done = cli(command)

    assert done.exit_code == 2
    assert "Missing argument 'execution'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("phase", ["waiting_for_approval", "paused", "terminated", "PAUSED"])
def test_get_executions_takes_the_new_phases(cli: Cli, completed_id: str, phase: str) -> None:
    done = cli("get", "executions", "--phase", phase)

    assert done.exit_code == 0, done.stderr
    assert done.stdout == ""
    assert "No executions found." in done.stderr


def test_get_executions_by_completed_phase_still_lists_them(cli: Cli, completed_id: str) -> None:
    done = cli("get", "executions", "--phase", "completed", "-o", "name")

    assert (done.exit_code, done.stdout) == (0, f"execution/{completed_id}\n")


def test_an_unknown_phase_exits_2_listing_every_phase(cli: Cli) -> None:
    done = cli("get", "executions", "--phase", "stuck")

    assert done.exit_code == 2
    assert "waiting_for_approval, paused, terminated" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_describe_of_an_execution_says_whether_it_auto_approves(
    cli: Cli, completed_id: str
) -> None:
    done = cli("describe", "execution", completed_id)

    assert done.exit_code == 0, done.stderr
    assert "Auto Approve:" in done.stdout
    assert "Pending Approvals" not in done.stdout


def test_run_with_auto_approve_records_it_on_the_execution(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    model.default = Reply(content="Hello!")

    done = cli("run", "greeter", "hi", "--auto-approve")

    assert done.exit_code == 0, done.stderr
    (execution,) = client.list_executions()
    assert execution.spec.auto_approve is True
