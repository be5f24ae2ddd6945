"""Asking a person about the tool calls an execution waits on.

When `stigmer run` or `stigmer logs -f` follows an execution that enters
WAITING_FOR_APPROVAL, every waiting call of the model's turn is shown (tool,
server, arguments, what the model said) and asked about in turn:

    [a]pprove  approve [A]ll  [s]kip  [r]eject  [e]dit

`A` approves this call and every later call of the same server/tool (the
turn's other calls of that tool are then not asked); `r` asks for the
comment the model gets as the tool's result; `e` opens $EDITOR on the
arguments as JSON (invalid JSON, or JSON that is not an object, is reported
and the call is asked again, the editor starting from what was written).
The decisions are submitted together once every call is answered.

Asking needs a person: stdin and stderr must be terminals. Anywhere else
(a pipe, a script, CI) the waiting calls are printed with the exact commands
that decide them, and the command keeps following the execution, so
`stigmer approve` from another shell lets it go on. Everything here is
written to stderr: stdout keeps only the conversation, so a replay with
`stigmer logs` prints the same.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from rich.text import Text

from stigmer.api.v1 import execution_pb2
from stigmer.cli.output import error_console
from stigmer.client.approvals import Decision

CHOICES = "[a]pprove  approve [A]ll  [s]kip  [r]eject  [e]dit: "
DEFAULT_EDITOR = "vi"
Pending = execution_pb2.PendingApproval
# Reads one answer after printing its prompt; EOFError when input has ended.
Reader = Callable[[str], str]


def can_ask() -> bool:
    """Whether a person can answer: stdin and stderr are both terminals."""
    return sys.stdin.isatty() and error_console.is_terminal


def _plain(value: Any) -> Any:
    # A Struct holds every number as a double: 3 reads 3, not 3.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def arguments_of(call: Pending) -> dict[str, Any]:
    arguments: dict[str, Any] = _plain(json_format.MessageToDict(call.args))
    return arguments


def arguments_text(call: Pending) -> str:
    return json.dumps(arguments_of(call), separators=(",", ":"), sort_keys=True)


def tool_of(call: Pending) -> str:
    return f"{call.server}/{call.tool}" if call.server else call.tool


def _server_option(server: str | None) -> str:
    return f" --server {shlex.quote(server)}" if server else ""


def print_decision_commands(
    pending: list[Pending], execution_id: str, server: str | None = None
) -> None:
    """The waiting calls and, for each, the commands that decide it."""
    option = _server_option(server)
    count = f"{len(pending)} tool calls" if len(pending) > 1 else "a tool call"
    error_console.print(Text(f"execution {execution_id} waits for approval of {count}:"))
    for call in pending:
        quoted = shlex.quote(call.tool_call_id)
        where = f"{execution_id} {quoted}{option}"
        error_console.print(Text(f"  {call.tool_call_id}  {tool_of(call)} {arguments_text(call)}"))
        error_console.print(
            Text(f"    approve: stigmer approve {where}  (--all: and its later calls)")
        )
        error_console.print(Text(f"    reject:  stigmer reject {where} -m COMMENT"))
        error_console.print(Text(f"    skip:    stigmer skip {where}"))


def _read_from_terminal(prompt: str) -> str:
    return error_console.input(Text(prompt))


def _edited_text(text: str) -> tuple[str, str]:
    """Opens $EDITOR on `text`; returns what was saved and, when the editor
    could not be run or failed, why."""
    editor = shlex.split(os.environ.get("EDITOR") or DEFAULT_EDITOR)
    with tempfile.TemporaryDirectory(prefix="stigmer-edit-") as folder:
        path = Path(folder) / "arguments.json"
        path.write_text(text, encoding="utf-8")
        try:
            done = subprocess.run([*editor, str(path)], check=False)
        except OSError as error:
            return text, f"cannot run the editor {editor[0]!r}: {error.strerror or error}"
        if done.returncode != 0:
            return path.read_text(encoding="utf-8"), f"the editor exited {done.returncode}"
        return path.read_text(encoding="utf-8"), ""


def _parsed_object(text: str) -> tuple[dict[str, Any] | None, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
    if not isinstance(value, dict):
        return None, "the arguments must be a JSON object"
    return value, ""


def _describe(call: Pending, number: int, count: int) -> None:
    error_console.print(
        Text.assemble(
            ("approval needed", "bold yellow"),
            f" ({number} of {count}): tool {call.tool}",
            f" on server {call.server}" if call.server else "",
            f" [{call.tool_call_id}]",
        )
    )
    error_console.print(Text(f"  arguments: {arguments_text(call)}"))
    said = " ".join(call.model_text.split())
    if said:
        error_console.print(Text(f"  the model said: {said[:200]}"))


def _ask_one(call: Pending, read: Reader) -> Decision:
    """Asks until the person gives a decision on `call`."""
    edit_text = json.dumps(arguments_of(call), indent=2, sort_keys=True) + "\n"
    while True:
        answer = read(CHOICES).strip()
        if answer == "a":
            return Decision.approve(call)
        if answer == "A":
            return Decision.approve_all(call)
        if answer == "s":
            return Decision.skip(call)
        if answer == "r":
            return Decision.reject(call, read("comment for the model: ").strip())
        if answer == "e":
            edit_text, problem = _edited_text(edit_text)
            if not problem:
                arguments, problem = _parsed_object(edit_text)
                if arguments is not None:
                    return Decision.edit(call, arguments)
            error_console.print(Text(f"{problem}; choose again", style="red"))
            continue
        error_console.print(Text("answer a, A, s, r or e", style="red"))


def ask_decisions(
    pending: list[Pending],
    execution_id: str,
    server: str | None = None,
    *,
    read: Reader = _read_from_terminal,
) -> list[Decision]:
    """Asks about each waiting call in turn and returns the decisions.

    A call of a server/tool that was approved with `A` earlier in the turn
    is not asked about: the approve-all covers it. If input ends (Ctrl-D)
    the calls not answered keep waiting and the commands that decide them
    are printed.
    """
    decisions: list[Decision] = []
    approved_all: set[tuple[str, str]] = set()
    for number, call in enumerate(pending, start=1):
        if (call.server, call.tool) in approved_all:
            error_console.print(Text(f"{call.tool} [{call.tool_call_id}]: approved (all)"))
            decisions.append(Decision.approve(call))
            continue
        _describe(call, number, len(pending))
        try:
            decision = _ask_one(call, read)
        except EOFError:
            error_console.print()
            print_decision_commands(pending[number - 1 :], execution_id, server)
            return decisions
        if decision.action == "approve_all":
            approved_all.add((call.server, call.tool))
        decisions.append(decision)
    return decisions
