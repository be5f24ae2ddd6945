"""`stigmer usage`: what model calls used and cost, from the server's usage
records (one per model call), with a breakdown by agent, model or day.

At a terminal a small bar chart of the cost per day follows the table
(tokens per day when nothing cost anything, as with local models); piped,
only the table prints, and `-o json` prints the report as the API gives it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from stigmer.api.v1 import execution_pb2, usage_pb2
from stigmer.cli.output import console
from stigmer.cli.resources import ServerOption
from stigmer.client import Client
from stigmer.errors import InvalidArgument
from stigmer.resources.prices import format_dollars as dollars
from stigmer.resources.usage_spans import since_moment

GROUPINGS = ("agent", "model", "day")
CHART_WIDTH = 40


def _row(key: str, usage: execution_pb2.Usage, executions: int) -> list[str]:
    return [
        key,
        str(executions),
        str(usage.model_calls),
        str(usage.input_tokens),
        str(usage.cached_tokens),
        str(usage.output_tokens),
        str(usage.reasoning_tokens),
        dollars(usage.cost_micros),
    ]


USAGE_FIELDS = (
    "model_calls",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_micros",
)


def _usage_dict(usage: execution_pb2.Usage) -> dict[str, int]:
    return {name: getattr(usage, name) for name in USAGE_FIELDS}


def report_dict(report: usage_pb2.UsageReport) -> dict[str, object]:
    """The report with its figures as JSON numbers (protobuf's JSON writes
    64-bit integers as strings)."""

    def groups(entries: Iterable[usage_pb2.UsageGroup]) -> list[dict[str, object]]:
        return [
            {"key": group.key, "executions": group.executions, **_usage_dict(group.usage)}
            for group in entries
        ]

    return {
        "total": {"executions": report.executions, **_usage_dict(report.total)},
        "groups": groups(report.groups),
        "days": groups(report.days),
    }


def usage_table(report: usage_pb2.UsageReport, by: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for header in (by.upper(), "EXECUTIONS", "CALLS", "INPUT", "CACHED", "OUTPUT", "REASONING"):
        table.add_column(header, justify="left" if header == by.upper() else "right")
    table.add_column("COST", justify="right")
    for group in report.groups:
        table.add_row(*_row(group.key or "-", group.usage, group.executions))
    table.add_row(*_row("TOTAL", report.total, report.executions), style="bold")
    return table


def day_chart(report: usage_pb2.UsageReport) -> list[str]:
    """One bar per day: of cost, or of tokens when nothing cost anything."""
    if not report.days:
        return []
    is_cost = report.total.cost_micros > 0

    def amount(usage: execution_pb2.Usage) -> int:
        return usage.cost_micros if is_cost else usage.input_tokens + usage.output_tokens

    largest = max(amount(day.usage) for day in report.days) or 1
    lines = [f"{'cost' if is_cost else 'tokens'} per day"]
    for day in report.days:
        value = amount(day.usage)
        bar = "█" * max(1 if value else 0, round(CHART_WIDTH * value / largest))
        figure = dollars(value) if is_cost else f"{value:,} tokens"
        lines.append(f"{day.key}  {bar:<{CHART_WIDTH}}  {figure}")
    return lines


def usage(
    agent: Annotated[str, typer.Option("--agent", help="Only this agent's calls")] = "",
    session: Annotated[str, typer.Option("--session", help="Only this session's calls")] = "",
    since: Annotated[
        str, typer.Option("--since", help="Only calls since: 7d, 12h, 2w or YYYY-MM-DD")
    ] = "",
    by: Annotated[str, typer.Option("--by", help="Break down by agent, model or day")] = "day",
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
    server: ServerOption = None,
) -> None:
    """Show the tokens and cost of model calls, in total and broken down."""
    if by not in GROUPINGS:
        raise InvalidArgument.for_field("--by", f"{by!r}: use agent, model or day")
    if output not in ("table", "json"):
        raise InvalidArgument.for_field("--output", f"{output!r}: use table or json")
    moment = since_moment(since, datetime.now(UTC), field="--since")
    with Client(server) as client:
        report = client.usage(agent=agent, session=session, since=moment, group_by=by)
    if output == "json":
        sys.stdout.write(json.dumps(report_dict(report), indent=2) + "\n")
        return
    console.print(usage_table(report, by))
    if sys.stdout.isatty():
        console.print()
        for line in day_chart(report):
            console.print(line)


def register(app: typer.Typer) -> None:
    app.command()(usage)
