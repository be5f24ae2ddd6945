"""`stigmer check` and `stigmer repair`: the store's invariants from outside."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from google.protobuf import json_format
from rich.table import Table
from rich.text import Text

from stigmer.api.v1 import consistency_pb2
from stigmer.cli.output import console
from stigmer.cli.resources import ServerOption
from stigmer.client import Client
from stigmer.errors import InvalidArgument

EXIT_VIOLATIONS = 1


def _violations_table(report: consistency_pb2.ConsistencyReport) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for header in ("CODE", "RESOURCES", "REPAIRABLE", "MESSAGE"):
        table.add_column(header)
    for violation in report.violations:
        table.add_row(
            violation.code,
            " ".join(violation.resources),
            "yes" if violation.is_repairable else "no",
            Text(violation.message),
        )
    return table


def check(
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
    server: ServerOption = None,
) -> None:
    """List every broken invariant of the store. Exit 0 when there is none, 1 otherwise."""
    if output not in ("table", "json"):
        raise InvalidArgument.for_field("output", "use table or json")
    with Client(server) as client:
        report = client.check()
    if output == "json":
        body = json_format.MessageToDict(report, preserving_proto_field_name=True)
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    elif report.violations:
        console.print(_violations_table(report))
    else:
        console.print(f"No violations ({report.resources_checked} resources checked).")
    raise typer.Exit(EXIT_VIOLATIONS if report.violations else 0)


def repair(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan, write nothing")
    ] = False,
    orphans: Annotated[
        str, typer.Option("--orphans", help="delete: remove orphans; keep: leave them")
    ] = "keep",
    server: ServerOption = None,
) -> None:
    """Fix what can be fixed, each fix in its own transaction, and say what
    was done. Exit 0 when nothing is left broken, 1 otherwise."""
    with Client(server) as client:
        result = client.repair(dry_run=dry_run, orphans=orphans)
    for action in result.actions:
        if result.dry_run:
            state = "would"
        elif action.is_done:
            state = "done"
        else:
            state = "failed"
        line = Text.assemble((f"{state}: ", "bold"), f"{action.code}: {action.description}")
        if action.error:
            line.append(f" ({action.error})")
        console.print(line)
    if not result.actions:
        console.print("Nothing to repair.")
    remaining = result.remaining.violations
    if remaining and not result.dry_run:
        console.print(f"{len(remaining)} violation(s) left that need a decision:")
        console.print(_violations_table(result.remaining))
    raise typer.Exit(EXIT_VIOLATIONS if remaining and not result.dry_run else 0)


def register(app: typer.Typer) -> None:
    app.command()(check)
    app.command()(repair)
