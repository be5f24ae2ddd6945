"""`stigmer run` and `stigmer logs -f` at a terminal: the spinner that shows
the agent is working, and Ctrl-C, which stops following but not the
execution (twice: cancels it).

The command runs in a real pseudo-terminal, as its controlling terminal, so
Ctrl-C is the byte \\x03 typed into it and the kernel turns it into SIGINT;
what the command writes is read back from the terminal with deadlines. The
model is held (`HeldModel`) until the test lets it answer, so an execution
is still running when the test interrupts the command, whatever the
machine's speed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import pytest

from stigmer.api.v1.execution_pb2 import (
    MESSAGE_TYPE_AI,
    MESSAGE_TYPE_HUMAN,
    MESSAGE_TYPE_TOOL,
    TOOL_CALL_STATUS_COMPLETED,
    TOOL_CALL_STATUS_PENDING,
    TOOL_CALL_STATUS_RUNNING,
    AgentExecution,
)
from stigmer.cli.live import Wait, elapsed_text
from stigmer.client import Client
from stigmer.resources.execution_events import CANCELLED, COMPLETED, IN_PROGRESS
from stigmer.testing.cli import COMMAND, Cli
from stigmer.testing.scripted_model import Reply, ScriptedModel, ToolCallStep
from stigmer.testing.server import ServerThread
from tests.agents import PLAIN_AGENT, stdio_tools_agent
from tests.backends import engine_options
from tests.waiting import wait_for_end, wait_until

DEADLINE_SECONDS = 30.0
CTRL_C = b"\x03"
# The child makes the terminal it was given its controlling terminal, then
# becomes the command: Ctrl-C typed into the terminal then reaches it.
TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; "
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
_CONTROL = re.compile(r"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07]*\x07|[\r\n]|[^\x1b\r\n]+")
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"


def render_screen(raw: str) -> list[str]:
    """What a terminal shows after `raw`: text, line ends, carriage returns,
    cursor up (ESC[nA) and erase line (ESC[2K), the moves a transient rich
    line makes; other escapes (colours, cursor visibility) show nothing."""
    lines: list[list[str]] = [[]]
    row = column = 0
    for token in _CONTROL.finditer(raw):
        piece = token.group(0)
        if piece == "\n":
            row += 1
            if row == len(lines):
                lines.append([])
        elif piece == "\r":
            column = 0
        elif piece.startswith("\x1b"):
            argument, command = token.group(1), token.group(2)
            if command == "A":
                row = max(0, row - int(argument or 1))
            elif command == "K" and argument == "2":
                lines[row] = []
        else:
            line = lines[row]
            line.extend(" " * (column - len(line)))
            line[column : column + len(piece)] = piece
            column += len(piece)
    shown = ["".join(line).rstrip() for line in lines]
    while shown and not shown[-1]:
        shown.pop()
    return shown


class Terminal:
    """`stigmer ARGS` running in a pseudo-terminal of 100 columns."""

    def __init__(self, cli: Cli, *args: str) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        env = {**cli.env, "TERM": "xterm-256color"}
        for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-c", TAKE_TERMINAL, "-m", "stigmer.cli.main", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cli.cwd,
            start_new_session=True,
        )
        os.close(slave)
        self._master = master
        self._raw = b""
        self._is_closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(DEADLINE_SECONDS)
        os.close(self._master)

    @property
    def raw(self) -> str:
        """Everything the command wrote, escape sequences included."""
        return self._raw.decode(errors="replace")

    @property
    def text(self) -> str:
        """What it wrote, without escape sequences."""
        return _ESCAPE.sub("", self.raw).replace("\r\n", "\n")

    @property
    def screen_lines(self) -> list[str]:
        """The lines as the terminal shows them in the end (see `render_screen`)."""
        return render_screen(self.raw)

    def _read(self, timeout: float) -> bool:
        """Reads what is there within `timeout`; False at the end of output."""
        if self._is_closed:
            return False
        readable, _, _ = select.select([self._master], [], [], timeout)
        if not readable:
            return True
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: the command exited and closed the terminal
            chunk = b""
        if not chunk:
            self._is_closed = True
            return False
        self._raw += chunk
        return True

    def expect(self, pattern: str, *, deadline: float = DEADLINE_SECONDS) -> re.Match[str]:
        """Reads until the output (escapes removed) matches the regex."""
        end = time.monotonic() + deadline
        while True:
            found = re.search(pattern, self.text)
            if found is not None:
                return found
            remaining = end - time.monotonic()
            if remaining <= 0 or not self._read(min(remaining, 0.1)):
                found = re.search(pattern, self.text)
                if found is not None:
                    return found
                raise AssertionError(f"{pattern!r} never appeared in:\n{self.text}")

    def press_ctrl_c(self) -> None:
        os.write(self._master, CTRL_C)

    def exit_code(self, *, deadline: float = DEADLINE_SECONDS) -> int:
        """Reads to the end of the output and returns the exit code."""
        end = time.monotonic() + deadline
        while self._read(max(0.0, min(end - time.monotonic(), 0.1))):
            if time.monotonic() > end:
                raise AssertionError(f"the command did not end; it wrote:\n{self.text}")
        return self.process.wait(max(0.0, end - time.monotonic()) + 1)

    def assert_cursor_shown(self) -> None:
        raw = self.raw
        assert raw.rfind(SHOW_CURSOR) >= raw.rfind(HIDE_CURSOR), "the cursor was left hidden"


class HeldModel:
    """Answers each model request only once the test lets it."""

    def __init__(self, model: ScriptedModel) -> None:
        self._released = threading.Event()
        self._answer = Reply(content="")
        model.reply_with(self._respond)

    def _respond(self, request: dict[str, object]) -> Reply:
        self._released.wait(DEADLINE_SECONDS)
        return self._answer

    def release(self, answer: Reply) -> None:
        self._answer = answer
        self._released.set()


@pytest.fixture
def held(model: ScriptedModel) -> Iterator[HeldModel]:
    holding = HeldModel(model)
    try:
        yield holding
    finally:
        holding.release(Reply(content="released"))  # never leave a request thread waiting


@pytest.fixture
def server(store_url: str, model: ScriptedModel) -> Iterator[ServerThread]:
    with ServerThread(store_url, engine=engine_options(model.base_url)) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


def _execution_id(text: str) -> str:
    found = re.search(r"execution (\S+) goes on", text)
    assert found is not None, text
    return found.group(1)


def _started(client: Client) -> str:
    (execution,) = client.list_executions()
    return str(execution.metadata.id)


def test_run_on_a_terminal_shows_what_the_agent_waits_for_with_the_elapsed_time(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(stdio_tools_agent())
    model.add(
        Reply(tool_calls=(ToolCallStep("sleep", {"seconds": 1.5}),), delay_seconds=1.0),
        Reply(content="I slept well.", delay_seconds=1.0),
    )

    with Terminal(cli, "run", "calculator", "sleep a bit") as terminal:
        terminal.expect(r"thinking… \d+\.\ds")
        terminal.expect(r"tool sleep running… \d+\.\ds")
        assert terminal.exit_code() == 0, terminal.text

    shown = terminal.screen_lines
    assert "you: sleep a bit" in shown
    assert '  tool sleep({"seconds":1.5})' in shown
    assert "  tool sleep → slept" in shown
    assert "agent: I slept well." in shown
    # The spinner line is gone once output arrives: nothing of it is left on screen.
    assert not [line for line in shown if "thinking…" in line or "running…" in line], shown
    # It counted up while the tool ran (refreshed about ten times a second).
    tenths = re.findall(r"tool sleep running… (\d+\.\d)s", terminal.text)
    assert len(set(tenths)) >= 3, tenths
    assert "Traceback" not in terminal.text
    terminal.assert_cursor_shown()


def test_one_ctrl_c_stops_following_and_the_execution_goes_on(
    cli: Cli, client: Client, held: HeldModel
) -> None:
    client.apply(PLAIN_AGENT)

    with Terminal(cli, "run", "greeter", "hi") as terminal:
        terminal.expect(r"thinking… \d+\.\ds")
        terminal.press_ctrl_c()
        terminal.expect("press Ctrl-C again")
        code = terminal.exit_code()

    assert code == 130, terminal.text
    execution_id = _execution_id(terminal.text)
    assert execution_id == _started(client)
    assert (
        f"execution {execution_id} goes on; follow it: stigmer logs -f {execution_id}; "
        f"stop it: stigmer cancel {execution_id}"
    ) in terminal.text
    assert "Traceback" not in terminal.text and "Exception ignored" not in terminal.text
    assert "cancelled" not in terminal.text
    terminal.assert_cursor_shown()
    assert client.get_execution(execution_id).status.phase == IN_PROGRESS
    held.release(Reply(content="Hello after all."))
    final = wait_for_end(client, execution_id)
    assert final.status.phase == COMPLETED
    assert final.status.messages[-1].content == "Hello after all."


def test_two_ctrl_c_cancel_the_execution_and_say_so(
    cli: Cli, client: Client, held: HeldModel
) -> None:
    client.apply(PLAIN_AGENT)

    with Terminal(cli, "run", "greeter", "hi") as terminal:
        terminal.expect(r"thinking… \d+\.\ds")
        terminal.press_ctrl_c()
        terminal.expect("press Ctrl-C again")
        terminal.press_ctrl_c()
        code = terminal.exit_code()

    assert code == 130, terminal.text
    execution_id = _execution_id(terminal.text)
    assert f"execution {execution_id} cancelled" in terminal.text
    assert "Traceback" not in terminal.text and "Exception ignored" not in terminal.text
    terminal.assert_cursor_shown()
    assert client.get_execution(execution_id).status.phase == CANCELLED


def test_run_as_json_on_a_terminal_has_no_spinner_and_ctrl_c_prints_no_json(
    cli: Cli, client: Client, held: HeldModel
) -> None:
    client.apply(PLAIN_AGENT)

    with Terminal(cli, "run", "greeter", "hi", "-o", "json") as terminal:
        wait_until(
            lambda: (
                bool(client.list_executions())
                and len(client.get_execution(_started(client)).status.messages) == 2
            ),
            what="the model's turn to begin",
        )
        terminal.press_ctrl_c()
        code = terminal.exit_code()

    assert code == 130, terminal.text
    execution_id = _started(client)
    assert f"execution {execution_id} goes on" in terminal.text
    assert "thinking" not in terminal.text and "{" not in terminal.text
    assert "Traceback" not in terminal.text and "Exception ignored" not in terminal.text
    assert client.get_execution(execution_id).status.phase == IN_PROGRESS


def test_logs_follow_shows_the_spinner_and_ctrl_c_leaves_the_execution_running(
    cli: Cli, client: Client, held: HeldModel
) -> None:
    client.apply(PLAIN_AGENT)
    execution_id = client.run("greeter", "hi").metadata.id

    with Terminal(cli, "logs", "-f", execution_id) as terminal:
        terminal.expect("you: hi")
        terminal.expect(r"thinking… \d+\.\ds")
        terminal.press_ctrl_c()
        code = terminal.exit_code()

    assert code == 130, terminal.text
    assert f"follow it: stigmer logs -f {execution_id}" in terminal.text
    assert "Traceback" not in terminal.text and "Exception ignored" not in terminal.text
    terminal.assert_cursor_shown()
    assert client.get_execution(execution_id).status.phase == IN_PROGRESS

    with Terminal(cli, "logs", "-f", execution_id) as again:
        again.expect(r"thinking… \d+\.\ds")
        held.release(Reply(content="Hello, late but here."))
        assert again.exit_code() == 0, again.text
    assert "agent: Hello, late but here." in again.screen_lines


def test_in_a_pipe_or_as_json_there_is_no_spinner(
    cli: Cli, client: Client, model: ScriptedModel
) -> None:
    client.apply(PLAIN_AGENT)
    # Slow enough that a spinner would have been drawn several times.
    model.add(Reply(content="Done.", delay_seconds=1.0), Reply(content="Done.", delay_seconds=1.0))

    piped = cli("run", "greeter", "hi")
    as_json = cli("run", "greeter", "hi", "-o", "json")

    assert piped.exit_code == 0, piped.stderr
    for written in (piped.stdout, piped.stderr):
        assert "thinking" not in written and "running…" not in written
        assert "\x1b" not in written
    assert "agent: Done." in piped.stdout.splitlines()
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout)["status"]["phase"] == "EXECUTION_PHASE_COMPLETED"
    assert as_json.stderr == ""


def test_a_script_that_interrupts_run_gets_130_at_once_without_the_offer_to_cancel(
    cli: Cli, client: Client, held: HeldModel
) -> None:
    client.apply(PLAIN_AGENT)
    running = subprocess.Popen(
        [*COMMAND, "run", "greeter", "hi"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
        cwd=cli.cwd,
    )
    try:
        wait_until(
            lambda: (
                bool(client.list_executions())
                and len(client.get_execution(_started(client)).status.messages) == 2
            ),
            what="the model's turn to begin",
        )
        running.send_signal(signal.SIGINT)
        stdout, stderr = running.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()

    execution_id = _started(client)
    assert running.returncode == 130, stderr
    assert stdout == "you: hi\n"
    assert stderr == (
        f"execution {execution_id} goes on; follow it: stigmer logs -f {execution_id}; "
        f"stop it: stigmer cancel {execution_id}\n"
    )
    assert client.get_execution(execution_id).status.phase == IN_PROGRESS


def _execution(*messages: int, calls: tuple[tuple[str, int], ...] = ()) -> AgentExecution:
    execution = AgentExecution()
    execution.status.phase = IN_PROGRESS
    for kind in messages:
        execution.status.messages.add(type=kind)
    for name, status in calls:
        execution.status.tool_calls.add(id=f"id-{name}", name=name, status=status)
    return execution


def test_what_the_spinner_says_follows_from_the_execution_state() -> None:
    human, ai, tool = MESSAGE_TYPE_HUMAN, MESSAGE_TYPE_AI, MESSAGE_TYPE_TOOL

    def label(execution: AgentExecution) -> str | None:
        wait = Wait.of(execution)
        return None if wait is None else wait.label

    assert label(_execution(human)) == "thinking…"
    assert label(_execution(human, ai)) == "thinking…"
    assert Wait.of(_execution(human)) is not None
    assert _key(_execution(human)) == _key(_execution(human, ai))
    pending = _execution(human, ai, calls=(("add", TOOL_CALL_STATUS_PENDING),))
    running = _execution(human, ai, calls=(("add", TOOL_CALL_STATUS_RUNNING),))
    assert label(pending) == "tool add starting…"
    assert label(running) == "tool add running…"
    assert _key(pending) == _key(running)
    after_tool = _execution(human, ai, tool, calls=(("add", TOOL_CALL_STATUS_COMPLETED),))
    assert label(after_tool) == "thinking…"
    answering = _execution(human, ai)
    answering.status.messages[-1].content = "The answer"
    assert label(answering) is None
    ended = _execution(human)
    ended.status.phase = COMPLETED
    assert label(ended) is None
    assert [elapsed_text(s) for s in (0.04, 3.14, 59.9, 125.0)] == [
        "0.0s",
        "3.1s",
        "59.9s",
        "2m05s",
    ]


def _key(execution: AgentExecution) -> tuple[str, ...]:
    wait = Wait.of(execution)
    assert wait is not None
    return wait.key
