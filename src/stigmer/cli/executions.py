"""Execution commands: run, logs, cancel.

The exit code of `run`, `logs` and `logs -f` is the phase the execution
ended in, so a script can tell how it ended without parsing output:
  0  COMPLETED (and `logs` of one still going)
  1  FAILED
  4  CANCELLED
  5  TERMINATED (`stigmer terminate`, or a run limit the server enforced)

While it follows an execution that waits for approval, a terminal asks
about each waiting call (cli/approval_prompt.py); a pipe prints the commands
that decide them and keeps following. A pause is announced the same way,
with the command that resumes it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from stigmer.api.v1 import execution_pb2
from stigmer.cli import interruption
from stigmer.cli.approval_prompt import ask_decisions, can_ask, print_decision_commands
from stigmer.cli.completion import execution_ids
from stigmer.cli.conversation import ConversationPrinter
from stigmer.cli.live import WaitIndicator
from stigmer.cli.output import console, error_console, print_error
from stigmer.cli.resources import ServerOption
from stigmer.cli.run_settings import execution_run_config
from stigmer.cli.secret_options import secret_values
from stigmer.client import Client
from stigmer.client.approvals import Decision, Pending, PendingRound, pending_of
from stigmer.errors import InvalidArgument, StigmerError
from stigmer.resources.execution_events import (
    CANCELLED,
    COMPLETED,
    IN_PROGRESS,
    PAUSED,
    TERMINAL_PHASES,
    TERMINATED,
    phase_name,
)
from stigmer.resources.manifests import to_manifest_dict

EXIT_FAILED = 1
EXIT_CANCELLED = 4
EXIT_TERMINATED = 5
EXIT_CODES: dict[int, int] = {
    COMPLETED: 0,
    CANCELLED: EXIT_CANCELLED,
    TERMINATED: EXIT_TERMINATED,
}  # else EXIT_FAILED


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise InvalidArgument.for_field(option, f"{item!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


def _exit_code(phase: int) -> int:
    return EXIT_CODES.get(phase, EXIT_FAILED)


class ApprovalDesk:
    """What a follower does when the execution waits for approval: asks the
    person at the terminal and submits the decisions, or (in a pipe) prints
    the commands that decide the calls. Each call is brought up once."""

    def __init__(self, client: Client, execution_id: str, server: str | None) -> None:
        self.client = client
        self.execution_id = execution_id
        self.server = server
        self.is_asking = can_ask()
        self._round = PendingRound()

    def handle(
        self, state: execution_pb2.AgentExecution, before_output: Callable[[], None]
    ) -> None:
        listed = state
        if self._round.needs_listing(state):
            listed = self.client.get_execution(self.execution_id)
        fresh = self._round.take_new(listed)
        if not fresh:
            return
        before_output()
        if self.is_asking:
            self._ask(fresh)
        else:
            print_decision_commands(fresh, self.execution_id, self.server)

    def _ask(self, pending: list[Pending]) -> None:
        # A refused decision (edited arguments the tool's schema refuses)
        # leaves its call waiting: ask about the calls that still wait again.
        while pending:
            decisions = ask_decisions(pending, self.execution_id, self.server)
            try:
                self.client.submit_decisions(self.execution_id, decisions, pending)
                return
            except InvalidArgument as error:
                print_error(error)
            except StigmerError as error:
                # Decided meanwhile by someone else, or no longer waiting.
                print_error(error)
                return
            asked = {call.tool_call_id for call in pending}
            waiting = pending_of(self.client.get_execution(self.execution_id))
            pending = [call for call in waiting if call.tool_call_id in asked]

    def decide(self, pending: list[Pending]) -> list[Decision]:
        """The callback `Client.wait(on_approval=)` takes, for `run -o json`."""
        if self.is_asking:
            return ask_decisions(pending, self.execution_id, self.server)
        print_decision_commands(pending, self.execution_id, self.server)
        return []


def _announce_pause(execution_id: str, server: str | None) -> None:
    server_option = f" --server {server}" if server else ""
    error_console.print(
        f"execution {execution_id} is paused; "
        f"resume it: stigmer resume {execution_id}{server_option}"
    )


def _follow(client: Client, execution_id: str, server: str | None = None) -> int:
    """Prints the execution live until it ends; returns the exit code of its phase."""
    final = None
    indicator = WaitIndicator(console)
    printer = ConversationPrinter(console, before_output=indicator.clear)
    desk = ApprovalDesk(client, execution_id, server)

    def before_prompt() -> None:
        indicator.clear()
        printer.end_line()

    phase = 0
    updates = client.watch(execution_id)
    try:
        for state, update in updates:
            printer.event(update.event)
            if state.status.phase == PAUSED and phase != PAUSED:
                before_prompt()
                _announce_pause(execution_id, server)
            phase = state.status.phase
            desk.handle(state, before_prompt)
            indicator.show(state, is_line_open=printer.is_line_open)
            final = state
    finally:
        # Also on Ctrl-C: the spinner line goes, the cursor comes back, and
        # the stream is cancelled before anything else is printed.
        indicator.clear()
        updates.close()
    if final is None or final.status.phase not in TERMINAL_PHASES:
        final = client.get_execution(execution_id)
    printer.ending(final)
    return _exit_code(final.status.phase)


def _follow_or_leave(client: Client, execution_id: str, server: str | None) -> int:
    """Follows; on Ctrl-C leaves the execution running (see `interruption`)."""
    try:
        return _follow(client, execution_id, server)
    except KeyboardInterrupt:
        return interruption.leave(client, execution_id, server)


def run(
    agent: Annotated[str, typer.Argument(help="Agent name, slug or id")],
    message: Annotated[str | None, typer.Argument(help="The message (default: stdin)")] = None,
    session: Annotated[
        str, typer.Option("--session", help="Continue this session of the agent (slug or id)")
    ] = "",
    instance: Annotated[
        str,
        typer.Option("--instance", help="Start a new session on this instance (slug or id)"),
    ] = "",
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE for tools")] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="KEY=VALUE, KEY=@FILE or KEY=- (stdin); masked everywhere. "
            "@FILE and - keep the value out of the process list",
        ),
    ] = None,
    model: Annotated[str, typer.Option("--model", help="Model for this run")] = "",
    no_follow: Annotated[
        bool, typer.Option("--no-follow", help="Print the execution id and return")
    ] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
    idempotency_key: Annotated[
        str, typer.Option("--idempotency-key", help="Retries with this key return the same run")
    ] = "",
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", help="End the run TERMINATED once its model calls cost $X"),
    ] = None,
    max_tool_rounds: Annotated[
        int | None,
        typer.Option("--max-tool-rounds", help="End it once the model asks for tools N+1 times"),
    ] = None,
    max_tool_result_chars: Annotated[
        int | None,
        typer.Option("--max-tool-result-chars", help="Cut longer tool results (marked)"),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Sampling temperature, 0 to 2")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="At most N tokens per model answer")
    ] = None,
    auto_approve: Annotated[
        bool,
        typer.Option(
            "--auto-approve",
            help="Approve every tool call the policy asks about (never a denied one)",
        ),
    ] = False,
    server: ServerOption = None,
) -> None:
    """Run an agent and stream its conversation; at a terminal, ask about
    the tool calls that need approval. Exit code: 0 COMPLETED, 1 FAILED,
    4 CANCELLED, 5 TERMINATED (by a person or at a run limit)."""
    if output not in ("text", "json"):
        raise InvalidArgument.for_field("output", "use text or json")
    run_config = execution_run_config(
        max_cost=max_cost,
        max_tool_rounds=max_tool_rounds,
        max_tool_result_chars=max_tool_result_chars,
        temperature=temperature,
        max_tokens=max_tokens,
    )
    secrets, has_read_stdin = secret_values(secret, sys.stdin.read)
    if message is None and has_read_stdin:
        raise InvalidArgument.for_field(
            "message", "stdin holds a secret (--secret KEY=-): give the message as an argument"
        )
    text = message if message is not None else sys.stdin.read()
    with Client(server) as client:
        execution = client.run(
            agent,
            text,
            session=session,
            instance=instance,
            env=_pairs(env, "env"),
            secrets=secrets,
            model=model,
            idempotency_key=idempotency_key,
            run_config=run_config,
            auto_approve=auto_approve,
        )
        execution_id = execution.metadata.id
        if no_follow:
            console.print(execution_id)
            return
        if output == "json":
            try:
                desk = ApprovalDesk(client, execution_id, server)
                final = client.wait(execution_id, on_approval=desk.decide)
            except KeyboardInterrupt:
                raise typer.Exit(interruption.leave(client, execution_id, server)) from None
            sys.stdout.write(json.dumps(to_manifest_dict(final), indent=2) + "\n")
            raise typer.Exit(_exit_code(final.status.phase))
        code = _follow_or_leave(client, execution_id, server)
    raise typer.Exit(code)


def logs(
    execution: Annotated[str, typer.Argument(help="Execution id", autocompletion=execution_ids)],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until it ends")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Print an execution's conversation (and follow it with -f, asking
    about waiting tool calls at a terminal). Exit code as for run: 0
    COMPLETED, 1 FAILED, 4 CANCELLED, 5 TERMINATED; 0 for one still going."""
    with Client(server) as client:
        if follow:
            raise typer.Exit(_follow_or_leave(client, execution, server))
        printer = ConversationPrinter(console)
        found = client.get_execution(execution)
        printer.snapshot(found)
        if found.status.phase not in TERMINAL_PHASES:
            printer.end_line()
            error_console.print(f"({phase_name(found.status.phase)}; follow it with -f)")
            if pending_of(found):
                print_decision_commands(pending_of(found), execution, server)
            elif found.status.phase == PAUSED:
                error_console.print(f"(resume it: stigmer resume {execution})")
            return
        printer.ending(found)
    raise typer.Exit(_exit_code(found.status.phase))


def cancel(
    execution: Annotated[str, typer.Argument(help="Execution id", autocompletion=execution_ids)],
    reason: Annotated[str, typer.Option("--reason", help="Recorded with the cancellation")] = "",
    server: ServerOption = None,
) -> None:
    """Cancel an execution: a pending one at once, a running one as soon as
    its worker stops it."""
    with Client(server) as client:
        result = client.cancel(execution, reason)
    if result.status.phase == IN_PROGRESS:
        console.print(f"execution/{execution} cancel requested")
    else:
        console.print(f"execution/{execution} {phase_name(result.status.phase).lower()}")


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(logs)
    app.command()(cancel)
