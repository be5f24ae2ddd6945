"""Printing resources: tables (rich), YAML and JSON, and errors.

YAML output is valid input to `stigmer apply -f`. Secrets arrive already
masked from the server; nothing here unmasks them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stigmer.errors import InvalidArgument, StigmerError
from stigmer.resources.execution_events import phase_name
from stigmer.resources.kinds import KindInfo
from stigmer.resources.manifests import dump_yaml, to_manifest_dict

OUTPUT_FORMATS = ("table", "wide", "yaml", "json")
# Piped output is never truncated: scripts read every column in full.
_PIPE_WIDTH = None if sys.stdout.isatty() else 512
console = Console(highlight=False, soft_wrap=True, width=_PIPE_WIDTH)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _age(resource: Any) -> str:
    created = resource.status.audit.created_at
    if not created.seconds:
        return "-"
    seconds = int((datetime.now(UTC) - created.ToDatetime(tzinfo=UTC)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _transport(resource: Any) -> str:
    transport = resource.spec.WhichOneof("transport") or "-"
    detail = resource.spec.stdio.command if transport == "stdio" else resource.spec.http.url
    return f"{transport}: {detail}"


Column = tuple[str, Callable[[Any], str], bool]  # header, value, wide only
KIND_COLUMNS: dict[str, list[Column]] = {
    "Agent": [
        ("MODEL", lambda r: r.spec.model or "-", False),
        ("DEFAULT INSTANCE", lambda r: r.status.default_instance_id or "-", True),
        ("DESCRIPTION", lambda r: r.spec.description, True),
    ],
    "AgentInstance": [("AGENT", lambda r: r.spec.agent_id, False)],
    "Session": [
        ("INSTANCE", lambda r: r.spec.agent_instance_id, False),
        ("SUBJECT", lambda r: r.spec.subject, False),
    ],
    "Environment": [("VARIABLES", lambda r: str(len(r.spec.data)), False)],
    "McpServer": [("TRANSPORT", _transport, False)],
    "AgentExecution": [
        ("AGENT", lambda r: r.status.agent_id, False),
        ("PHASE", lambda r: phase_name(r.status.phase), False),
        ("SESSION", lambda r: r.status.session_id, True),
        ("MESSAGES", lambda r: str(len(r.status.messages)), False),
        ("ERROR", lambda r: r.status.error[:60], True),
    ],
}


def render_table(kind: KindInfo, resources: Sequence[Any], *, wide: bool) -> Table:
    columns: list[Column] = [("NAME", lambda r: r.metadata.slug, False)]
    if wide:
        columns.append(("ID", lambda r: r.metadata.id, True))
    columns += [c for c in KIND_COLUMNS.get(kind.name, []) if wide or not c[2]]
    columns += [("VERSION", lambda r: str(r.metadata.version), False), ("AGE", _age, False)]
    table = Table(box=None, pad_edge=False, show_edge=False)
    for header, _, _ in columns:
        table.add_column(header, no_wrap=True)
    for resource in resources:
        table.add_row(*(value(resource) for _, value, _ in columns))
    return table


def print_resources(kind: KindInfo, resources: Sequence[Any], output: str, *, single: bool) -> None:
    if output not in OUTPUT_FORMATS:
        raise InvalidArgument.for_field(
            "output", f"unknown output format {output!r} (use {', '.join(OUTPUT_FORMATS)})"
        )
    if output == "yaml":
        sys.stdout.write(dump_yaml(to_manifest_dict(r) for r in resources))
    elif output == "json":
        items = [to_manifest_dict(r) for r in resources]
        body: Any = items[0] if single else {"items": items}
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    elif not resources:
        error_console.print(f"No {kind.plural} found.")
    else:
        console.print(render_table(kind, resources, wide=output == "wide"))


def print_error(error: StigmerError) -> None:
    error_console.print(Text.assemble(("error: ", "bold red"), error.message))
    for violation in error.violations:
        if violation.description not in error.message:
            error_console.print(Text(f"  {violation.field}: {violation.description}"))
