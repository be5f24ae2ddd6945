"""Execution commands: run, logs, cancel."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from stigmer.cli import interruption
from stigmer.cli.completion import execution_ids
from stigmer.cli.conversation import ConversationPrinter
from stigmer.cli.live import WaitIndicator
from stigmer.cli.output import console, error_console
from stigmer.cli.resources import ServerOption
from stigmer.cli.run_settings import execution_run_config
from stigmer.cli.secret_options import secret_values
from stigmer.client import Client
from stigmer.errors import InvalidArgument
from stigmer.resources.execution_events import (
    CANCELLED,
    COMPLETED,
    IN_PROGRESS,
    TERMINAL_PHASES,
    phase_name,
)
from stigmer.resources.manifests import to_manifest_dict

EXIT_FAILED = 1
EXIT_CANCELLED = 4
EXIT_CODES: dict[int, int] = {COMPLETED: 0, CANCELLED: EXIT_CANCELLED}  # else EXIT_FAILED


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


def _follow(client: Client, execution_id: str) -> int:
    """Prints the execution live until it ends; returns the exit code of its phase."""
    final = None
    indicator = WaitIndicator(console)
    printer = ConversationPrinter(console, before_output=indicator.clear)
    updates = client.watch(execution_id)
    try:
        for state, update in updates:
            printer.event(update.event)
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
        return _follow(client, execution_id)
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
    server: ServerOption = None,
) -> None:
    """Run an agent and stream its conversation. Exit code: 0 COMPLETED,
    1 FAILED (or TERMINATED at a run limit), 4 CANCELLED."""
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
        )
        execution_id = execution.metadata.id
        if no_follow:
            console.print(execution_id)
            return
        if output == "json":
            try:
                final = client.wait(execution_id)
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
    """Print an execution's conversation (and follow it with -f). Exit code
    as for run: 0 COMPLETED, 1 FAILED, 4 CANCELLED; 0 for one still going."""
    with Client(server) as client:
        if follow:
            raise typer.Exit(_follow_or_leave(client, execution, server))
        printer = ConversationPrinter(console)
        found = client.get_execution(execution)
        printer.snapshot(found)
        if found.status.phase not in TERMINAL_PHASES:
            printer.end_line()
            error_console.print(f"({phase_name(found.status.phase)}; follow it with -f)")
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
