"""`stigmer approve|reject|skip EXECUTION [TOOL_CALL]`: deciding a waiting tool call.

TOOL_CALL may be left out when the execution waits on exactly one call;
with several it is a usage error that lists them, so a script never decides
the wrong one. Each command prints the decision and what the execution does
next (it goes on once every call of the turn is decided).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.text import Text

from stigmer.api.v1 import execution_pb2
from stigmer.cli.approval_prompt import tool_of
from stigmer.cli.completion import execution_ids
from stigmer.cli.output import console
from stigmer.cli.resources import ServerOption
from stigmer.client import Client
from stigmer.errors import FailedPrecondition, InvalidArgument
from stigmer.resources.execution_events import ACTIVE_PHASES, WAITING_FOR_APPROVAL, phase_name

ExecutionArgument = Annotated[
    str, typer.Argument(help="Execution id", autocompletion=execution_ids)
]
ToolCallArgument = Annotated[
    str | None,
    typer.Argument(help="The waiting tool call's id (may be left out when only one waits)"),
]
_PAST = {
    "approve": "approved",
    "approve_all": "approved with all its later calls",
    "skip": "skipped",
    "reject": "rejected",
    "edit": "approved with edited arguments",
}


def waiting_call(
    execution: execution_pb2.AgentExecution, tool_call_id: str | None
) -> execution_pb2.PendingApproval:
    """The waiting call the command is about.

    Raises:
        FailedPrecondition: the execution waits on no call.
        InvalidArgument: no TOOL_CALL and several wait (they are listed),
            or TOOL_CALL is not one of those that wait.
    """
    status = execution.status
    execution_id = execution.metadata.id
    pending = list(status.pending_approvals) if status.phase == WAITING_FOR_APPROVAL else []
    if not pending:
        raise FailedPrecondition(
            f"execution {execution_id} is {phase_name(status.phase)}: it waits for no approval",
            facts={"phase": phase_name(status.phase)},
        )
    listed = ", ".join(f"{p.tool_call_id} ({tool_of(p)})" for p in pending)
    if tool_call_id is None:
        if len(pending) > 1:
            raise InvalidArgument.for_field(
                "tool_call",
                f"execution {execution_id} waits on {len(pending)} tool calls; name one: {listed}",
            )
        return pending[0]
    for call in pending:
        if call.tool_call_id == tool_call_id:
            return call
    raise InvalidArgument.for_field(
        "tool_call",
        f"{tool_call_id!r} does not wait in execution {execution_id}; waiting: {listed}",
    )


def _report(
    call: execution_pb2.PendingApproval, action: str, after: execution_pb2.AgentExecution
) -> None:
    waiting = len(after.status.pending_approvals)
    if after.status.phase == WAITING_FOR_APPROVAL and waiting:
        goes_on = f"still waits on {waiting} tool call{'s' if waiting > 1 else ''}"
    elif after.status.phase in ACTIVE_PHASES:
        goes_on = "goes on"
    else:
        goes_on = f"is {phase_name(after.status.phase).lower()}"
    console.print(
        Text(
            f"execution/{after.metadata.id} tool call {call.tool_call_id} ({tool_of(call)}) "
            f"{_PAST[action]}; execution {goes_on}"
        )
    )


def _decide(
    server: str | None,
    execution: str,
    tool_call: str | None,
    action: str,
    comment: str = "",
    edited_args: dict[str, Any] | None = None,
) -> None:
    with Client(server) as client:
        call = waiting_call(client.get_execution(execution), tool_call)
        after = client.submit_approval(
            execution, call.tool_call_id, action, comment=comment, edited_args=edited_args
        )
    _report(call, action, after)


def _edited_arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidArgument.for_field("args", f"invalid JSON: {error.msg}") from None
    if not isinstance(value, dict):
        raise InvalidArgument.for_field("args", "must be a JSON object of the tool's arguments")
    return value


def approve(
    execution: ExecutionArgument,
    tool_call: ToolCallArgument = None,
    all_calls: Annotated[
        bool,
        typer.Option("--all", help="Also approve every later call of this server/tool"),
    ] = False,
    args: Annotated[
        str, typer.Option("--args", help="Run it with these arguments instead (a JSON object)")
    ] = "",
    comment: Annotated[str, typer.Option("--message", "-m", help="Recorded with it")] = "",
    server: ServerOption = None,
) -> None:
    """Approve a tool call the execution waits on (--all: and its later calls)."""
    if all_calls and args:
        raise InvalidArgument.for_field("args", "--args edits one call; it cannot go with --all")
    if args:
        _decide(server, execution, tool_call, "edit", comment, _edited_arguments(args))
        return
    _decide(server, execution, tool_call, "approve_all" if all_calls else "approve", comment)


def reject(
    execution: ExecutionArgument,
    tool_call: ToolCallArgument = None,
    comment: Annotated[
        str, typer.Option("--message", "-m", help="Why: the model gets it as the tool's result")
    ] = "",
    server: ServerOption = None,
) -> None:
    """Reject a tool call: it is not run, and the model is told why (-m)."""
    _decide(server, execution, tool_call, "reject", comment)


def skip(
    execution: ExecutionArgument,
    tool_call: ToolCallArgument = None,
    comment: Annotated[str, typer.Option("--message", "-m", help="Recorded with it")] = "",
    server: ServerOption = None,
) -> None:
    """Skip a tool call: it is not run, and the model is told it was skipped."""
    _decide(server, execution, tool_call, "skip", comment)


def register(app: typer.Typer) -> None:
    app.command()(approve)
    app.command()(reject)
    app.command()(skip)
