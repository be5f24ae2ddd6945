"""The approval prompt of `stigmer run` at a terminal, through a real
pseudo-terminal: each waiting call of the turn is shown and asked about in
turn, `e` opens $EDITOR on the arguments as JSON (invalid JSON is reported
and asked again), `r` asks for the comment, and the decisions reach the
model. $EDITOR is a small script that writes what the test tells it to."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.resources.execution_events import COMPLETED
from stigmer.testing.cli import Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import gated_tools_agent
from tests.backends import engine_options
from tests.cli.test_cli_terminal import Terminal
from tests.executions.approvals import tool_results_of
from tests.waiting import wait_for_end

ADD = ToolCallStep("add", {"a": 2, "b": 3}, id="c1")
ECHO = ToolCallStep("echo", {"text": "hello"}, id="c2")
# Writes the next of the texts in EDITS (one a call) over the file it is
# given, and records what the file held when it was opened.
EDITOR_SCRIPT = """\
import json, pathlib, sys
folder = pathlib.Path(__file__).parent
edits = json.loads((folder / "edits.json").read_text())
count_file = folder / "count"
count = int(count_file.read_text()) if count_file.exists() else 0
count_file.write_text(str(count + 1))
target = pathlib.Path(sys.argv[1])
(folder / f"opened-{count}.json").write_text(target.read_text())
target.write_text(edits[count])
"""


class TypingTerminal(Terminal):
    def type(self, text: str) -> None:
        os.write(self._master, text.encode())


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


@pytest.fixture
def editor(tmp_path: Path) -> Path:
    folder = tmp_path / "editor"
    folder.mkdir()
    (folder / "edit.py").write_text(EDITOR_SCRIPT)
    return folder


def test_the_prompt_edits_one_call_rejects_the_other_and_the_model_reads_both(
    cli: Cli, client: Client, model: ScriptedModel, editor: Path
) -> None:
    client.apply(gated_tools_agent(ask=("calc/add", "calc/echo")))
    model.add(Reply(content="Two things.", tool_calls=(ADD, ECHO)), Reply(content="done"))
    (editor / "edits.json").write_text(json.dumps(["{not json", '{"a": 40, "b": 2}']))
    at_terminal = cli.with_env(EDITOR=f"{sys.executable} {editor / 'edit.py'}")

    with TypingTerminal(at_terminal, "run", "careful", "add and echo") as terminal:
        terminal.expect(r"approval needed \(1 of 2\): tool add on server calc \[c1\]")
        terminal.expect(r'arguments: \{"a":2,"b":3\}')
        terminal.expect(r"the model said: Two things\.")
        terminal.expect(r"\[a\]pprove  approve \[A\]ll  \[s\]kip  \[r\]eject  \[e\]dit: $")
        terminal.type("e\n")
        terminal.expect(r"invalid JSON: Expecting property name enclosed in double quotes")
        terminal.expect(r"choose again\n.*\[e\]dit: $")
        terminal.type("e\n")
        terminal.expect(r"approval needed \(2 of 2\): tool echo on server calc \[c2\]")
        terminal.expect(r"\[e\]dit: $")
        terminal.type("x\n")
        terminal.expect(r"answer a, A, s, r or e")
        terminal.type("r\n")
        terminal.expect(r"comment for the model: $")
        terminal.type("not now\n")
        assert terminal.exit_code() == 0, terminal.text

    (execution,) = client.list_executions()
    final = wait_for_end(client, execution.metadata.id)
    assert final.status.phase == COMPLETED
    assert tool_results_of(model.requests[1]) == {"c1": "42", "c2": "not now"}
    # The editor opened on the arguments as JSON, then on what was written.
    assert json.loads((editor / "opened-0.json").read_text()) == {"a": 2, "b": 3}
    assert (editor / "opened-1.json").read_text() == "{not json"
    shown = terminal.screen_lines
    assert '  tool add edited by local: {"a":40,"b":2}' in shown
    assert "  tool echo rejected by local: not now" in shown
    assert any(line.startswith("COMPLETED (") for line in shown)


def test_approve_all_at_the_prompt_covers_the_turns_later_calls_of_that_tool(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    again = ToolCallStep("add", {"a": 1, "b": 2}, id="c3")
    model.add(Reply(tool_calls=(ADD, again)), Reply(content="done"))

    with TypingTerminal(cli, "run", "careful", "add twice") as terminal:
        terminal.expect(r"approval needed \(1 of 2\): tool add on server calc \[c1\]")
        terminal.expect(r"\[e\]dit: $")
        terminal.type("A\n")
        terminal.expect(r"add \[c3\]: approved \(all\)")
        assert terminal.exit_code() == 0, terminal.text

    assert "approval needed (2 of 2)" not in terminal.text
    assert tool_results_of(model.requests[1]) == {"c1": "5", "c3": "3"}


def test_logs_f_at_a_terminal_asks_about_a_run_started_without_following(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(tool_calls=(ADD,)), Reply(content="skipped it"))
    started = cli("run", "careful", "add", "--no-follow")
    execution_id = started.stdout.strip()

    with TypingTerminal(cli, "logs", "-f", execution_id) as terminal:
        terminal.expect(r"approval needed \(1 of 1\): tool add on server calc \[c1\]")
        terminal.expect(r"\[e\]dit: $")
        terminal.type("s\n")
        assert terminal.exit_code() == 0, terminal.text

    assert "  tool add skipped by local" in terminal.screen_lines
    assert "skipped" in tool_results_of(model.requests[1])["c1"]


def test_edited_arguments_the_tool_refuses_are_reported_and_the_call_asked_again(
    cli: Cli, client: Client, model: ScriptedModel, editor: Path
) -> None:
    client.apply(gated_tools_agent())
    model.add(Reply(tool_calls=(ADD,)), Reply(content="done"))
    (editor / "edits.json").write_text(json.dumps(['{"a": "two", "b": 3}']))
    at_terminal = cli.with_env(EDITOR=f"{sys.executable} {editor / 'edit.py'}")

    with TypingTerminal(at_terminal, "run", "careful", "add") as terminal:
        terminal.expect(r"approval needed \(1 of 1\): tool add on server calc \[c1\]")
        terminal.expect(r"\[e\]dit: $")
        terminal.type("e\n")
        terminal.expect(r"error: .*edited_args")
        terminal.expect(r"approval needed \(1 of 1\): tool add on server calc \[c1\]")
        terminal.expect(r"\[e\]dit: $")
        terminal.type("a\n")
        assert terminal.exit_code() == 0, terminal.text

    assert tool_results_of(model.requests[1]) == {"c1": "5"}
