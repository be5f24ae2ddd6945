"""`stigmer pause|resume|terminate|recover EXECUTION`: steering a run.

- pause: PENDING/IN_PROGRESS → PAUSED at the next point between a model call
  and a tool call (until then the execution shows "pause requested");
- resume: PAUSED → on where it stopped;
- terminate: any phase that has not ended → TERMINATED now, without waiting
  for the work in flight (cancel waits for it);
- recover: FAILED → on from its recorded conversation (completed tool calls
  are not run again).

Each is a no-op when the execution is already there, and exits 1
(FAILED_PRECONDITION) from a phase it cannot leave. Each prints the phase the
execution is in afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from stigmer.api.v1 import execution_pb2
from stigmer.cli.approvals import ExecutionArgument
from stigmer.cli.output import console
from stigmer.cli.resources import ServerOption
from stigmer.client import Client
from stigmer.resources.execution_events import PAUSED, phase_name

ReasonOption = Annotated[str, typer.Option("--reason", help="Recorded with the change")]
Change = Callable[[Client, str, str], execution_pb2.AgentExecution]


def _state_text(execution: execution_pb2.AgentExecution) -> str:
    status = execution.status
    if status.is_pause_requested and status.phase != PAUSED:
        return f"pause requested ({phase_name(status.phase).lower()})"
    return phase_name(status.phase).lower()


def _change(server: str | None, execution: str, reason: str, change: Change) -> None:
    with Client(server) as client:
        after = change(client, execution, reason)
    console.print(f"execution/{execution} {_state_text(after)}")


def pause(
    execution: ExecutionArgument, reason: ReasonOption = "", server: ServerOption = None
) -> None:
    """Pause an execution between steps; `stigmer resume` continues it."""
    _change(server, execution, reason, Client.pause)


def resume(
    execution: ExecutionArgument, reason: ReasonOption = "", server: ServerOption = None
) -> None:
    """Resume a paused execution where it stopped."""
    _change(server, execution, reason, Client.resume)


def terminate(
    execution: ExecutionArgument, reason: ReasonOption = "", server: ServerOption = None
) -> None:
    """End an execution now (TERMINATED), without waiting for work in flight."""
    _change(server, execution, reason, Client.terminate)


def recover(
    execution: ExecutionArgument, reason: ReasonOption = "", server: ServerOption = None
) -> None:
    """Continue a FAILED execution from its recorded conversation."""
    _change(server, execution, reason, Client.recover)


def register(app: typer.Typer) -> None:
    app.command()(pause)
    app.command()(resume)
    app.command()(terminate)
    app.command()(recover)
