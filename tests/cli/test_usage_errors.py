"""Usage errors, help and version, on every command the app has.

The walk reads the commands off the app itself, so a command added later is
covered without touching this file. It runs them in-process through `main()`,
the entry point `stigmer` calls (a subprocess per case would cost a second
each); the explicit cases below run the real command in a subprocess.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from stigmer.cli import main as cli_main
from stigmer.testing.cli import Cli


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    command: Any

    @property
    def line(self) -> str:
        return " ".join(("stigmer", *self.path))

    @property
    def has_required_parameter(self) -> bool:
        return any(parameter.required for parameter in self.command.params)

    @property
    def is_group(self) -> bool:
        return bool(getattr(self.command, "commands", None))


def _walk(command: Any, path: tuple[str, ...]) -> Iterator[Command]:
    yield Command(path, command)
    for name, subcommand in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(subcommand, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(cli_main.app), ()))


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def invoke(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> Outcome:
    monkeypatch.setattr(sys, "argv", ["stigmer", *args])
    with pytest.raises(SystemExit) as exited:
        cli_main.main()
    captured = capsys.readouterr()
    code = exited.value.code
    return Outcome(code if isinstance(code, int) else 1, captured.out, captured.err)


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [key for key in os.environ if key.startswith("STIGMER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "home"))
    # An address nothing listens on: a command that got past parsing fails fast.
    monkeypatch.setenv("STIGMER_SERVER", "127.0.0.1:1")


def test_the_walk_reaches_top_level_commands_and_subcommands() -> None:
    lines = {command.line for command in COMMANDS}
    assert {"stigmer", "stigmer get", "stigmer apply", "stigmer config get"} <= lines
    assert any(command.has_required_parameter for command in COMMANDS)


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command.line)
def test_every_command_answers_usage_errors_with_exit_2_and_help_with_exit_0(
    command: Command, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hint = f"Run '{command.line} --help' for usage."

    unknown = invoke(capsys, monkeypatch, *command.path, "--no-such-option")
    assert unknown.exit_code == 2, unknown
    assert "No such option: --no-such-option" in unknown.stderr
    assert hint in unknown.stderr
    assert "Traceback" not in unknown.stdout + unknown.stderr

    if command.has_required_parameter:
        missing = invoke(capsys, monkeypatch, *command.path)
        assert missing.exit_code == 2, missing
        assert "Missing" in missing.stderr
        assert hint in missing.stderr
        assert "Traceback" not in missing.stdout + missing.stderr

    helped = invoke(capsys, monkeypatch, *command.path, "-h")
    assert helped.exit_code == 0, helped
    assert "Usage:" in helped.stdout and command.line in helped.stdout
    assert "Traceback" not in helped.stdout + helped.stderr

    if command.is_group and command.command.no_args_is_help:
        bare = invoke(capsys, monkeypatch, *command.path)
        assert bare.exit_code == 0, bare
        assert "Usage:" in bare.stdout and command.line in bare.stdout
        assert bare.stdout.count("Usage:") == 1


def test_the_usage_error_caught_is_the_class_typer_raises() -> None:
    with pytest.raises(cli_main.USAGE_ERROR):
        typer.main.get_command(cli_main.app).main(
            ["aply"], prog_name="stigmer", standalone_mode=False
        )


@pytest.fixture
def stigmer(tmp_path: Path) -> Cli:
    """The real `stigmer` command; nothing here needs a server."""
    return Cli.isolated(tmp_path / "home", {"SERVER": "127.0.0.1:1"}, cwd=tmp_path)


def test_a_misspelt_command_suggests_the_closest_one_and_exits_2(stigmer: Cli) -> None:
    result = stigmer("aply", "-f", "x.yaml")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: No such command 'aply'. Did you mean 'apply'?",
        "Run 'stigmer --help' for usage.",
    ]
    assert result.stdout == ""


def test_an_unknown_option_of_a_subcommand_names_that_subcommands_help(stigmer: Cli) -> None:
    result = stigmer("get", "agents", "-x")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: No such option: -x",
        "Run 'stigmer get --help' for usage.",
    ]


def test_version_prints_the_version_and_exits_0(stigmer: Cli) -> None:
    from stigmer import __version__

    result = stigmer("--version")
    assert (result.exit_code, result.stdout) == (0, f"stigmer {__version__}\n")


def test_bare_stigmer_prints_help_once_and_exits_0(stigmer: Cli) -> None:
    result = stigmer()
    assert result.exit_code == 0
    assert result.stdout.count("Usage: stigmer [OPTIONS] COMMAND") == 1
    assert "apply" in result.stdout and "completion" in result.stdout
    assert result.stderr == ""


def test_an_unexpected_error_prints_one_line_and_the_traceback_only_on_debug(
    stigmer: Cli, tmp_path: Path
) -> None:
    # A STIGMER_HOME that is a file: creating the config folder fails with an
    # OSError no command expects.
    home = tmp_path / "not-a-folder"
    home.write_text("")
    plain = stigmer.with_env(STIGMER_HOME=str(home))("config", "set", "server", "127.0.0.1:7")
    assert plain.exit_code == 1
    lines = plain.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("error: internal error: FileExistsError: ")
    assert lines[1] == "Rerun with STIGMER_DEBUG=1 to see the traceback."
    assert "Traceback" not in plain.stdout + plain.stderr

    debug = stigmer.with_env(STIGMER_HOME=str(home), STIGMER_DEBUG="1")(
        "config", "set", "server", "127.0.0.1:7"
    )
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert "FileExistsError" in debug.stderr
