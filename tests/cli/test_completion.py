"""Shell completion as a shell drives it: `stigmer completion SHELL` prints a
script, and the script calls `stigmer` back with the completion variable and
the words typed so far. These tests make that call-back, with the variable
values read off the printed scripts, against a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.engine.options import EngineOptions
from stigmer.runtime.contract import ModelSettings
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel
from stigmer.testing.server import ServerThread
from tests.control_plane.manifests import agent

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VARIABLE = "_STIGMER_COMPLETE"


@pytest.fixture
def server(store_url: str) -> Iterator[ServerThread]:
    """A server whose runs talk to a scripted model: executions to complete."""
    with ScriptedModel(default=Reply(content="done")) as model:
        options = EngineOptions(
            workers=1,
            poll_seconds=0.2,
            model=ModelSettings(provider="openai", model="scripted", base_url=model.base_url),
        )
        with ServerThread(store_url, engine=options) as running:
            yield running


def offline_cli(tmp_path: Path) -> Cli:
    """The CLI pointed at an address where no server listens."""
    return Cli.isolated(tmp_path / "home", {"SERVER": "127.0.0.1:1"}, cwd=tmp_path)


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    stigmer = offline_cli(tmp_path_factory.mktemp("scripts"))
    printed: dict[str, str] = {}
    for shell in SHELLS:
        result = stigmer("completion", shell)
        assert result.exit_code == 0, result.stderr
        printed[shell] = result.stdout
    return printed


def instruction(scripts: dict[str, str], shell: str) -> str:
    """The value the shell's script gives the completion variable."""
    found = re.search(rf"{COMPLETE_VARIABLE}=(\w+)", scripts[shell])
    assert found is not None, scripts[shell]
    return found.group(1)


def complete_bash(cli: Cli, scripts: dict[str, str], line: str) -> list[str]:
    """The candidates bash gets for the last word of `line` (COMP_WORDS is
    the line split on spaces, COMP_CWORD the index of the word completed)."""
    words = line.split(" ")
    result = cli.with_env(
        **{COMPLETE_VARIABLE: instruction(scripts, "bash")},
        COMP_WORDS=line,
        COMP_CWORD=str(len(words) - 1),
    )()
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    # No candidates is an empty line.
    return [candidate for candidate in result.stdout.splitlines() if candidate]


def test_each_shell_gets_a_script_that_calls_stigmer_back(scripts: dict[str, str]) -> None:
    assert "complete -o default -F _stigmer_completion stigmer" in scripts["bash"]
    assert "compdef _stigmer_completion stigmer" in scripts["zsh"]
    assert "complete --command stigmer" in scripts["fish"]
    for shell in SHELLS:
        assert instruction(scripts, shell).endswith(shell)


def test_an_unknown_shell_is_a_usage_error(tmp_path: Path) -> None:
    result = offline_cli(tmp_path)("completion", "tcsh")
    assert result.exit_code == 2
    assert "Run 'stigmer completion --help' for usage." in result.stderr


def test_commands_and_kinds_complete_without_a_server(
    scripts: dict[str, str], tmp_path: Path
) -> None:
    stigmer = offline_cli(tmp_path)
    assert complete_bash(stigmer, scripts, "stigmer ap") == ["apply", "approve"]
    assert sorted(complete_bash(stigmer, scripts, "stigmer re")) == [
        "recover",
        "reject",
        "repair",
        "resume",
    ]
    assert complete_bash(stigmer, scripts, "stigmer get ag") == ["agent", "agentinstance"]


def test_an_unreachable_server_gives_no_names_and_no_error(
    scripts: dict[str, str], tmp_path: Path
) -> None:
    stigmer = offline_cli(tmp_path)
    assert complete_bash(stigmer, scripts, "stigmer get agent ") == []
    assert complete_bash(stigmer, scripts, "stigmer logs ") == []


def test_names_of_the_kind_typed_complete_from_the_server(
    cli: Cli, client: Client, scripts: dict[str, str]
) -> None:
    client.create(agent("PR Reviewer"))
    client.create(agent("Support Bot"))
    assert complete_bash(cli, scripts, "stigmer get agent ") == ["pr-reviewer", "support-bot"]
    assert complete_bash(cli, scripts, "stigmer delete ag pr") == ["pr-reviewer"]


def test_execution_ids_complete_from_the_server_for_logs_cancel_and_get(
    cli: Cli, client: Client, scripts: dict[str, str]
) -> None:
    client.create(agent("PR Reviewer"))
    execution_id = client.run("pr-reviewer", "hello").metadata.id
    assert complete_bash(cli, scripts, "stigmer logs ") == [execution_id]
    assert complete_bash(cli, scripts, "stigmer get execution aex") == [execution_id]

    assert "_TYPER_COMPLETE_ARGS" in scripts["zsh"]
    zsh = cli.with_env(
        **{COMPLETE_VARIABLE: instruction(scripts, "zsh")},
        _TYPER_COMPLETE_ARGS="stigmer cancel ",
    )()
    assert zsh.exit_code == 0, zsh.stderr
    assert f'"{execution_id}":"' in zsh.stdout
