"""Printing resources: tables (rich), YAML, JSON, names and JSONPath, and errors.

YAML output is valid input to `stigmer apply -f`. `-o json`, `-o jsonpath=`
and `--sort-by` all see one shape: a resource's manifest dict, a list as
`{"items": [...]}`. `-o name` prints `kind/slug`, what `delete` and `get` take
back. Secrets arrive already masked from the server; nothing here unmasks them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stigmer.api.v1 import execution_pb2
from stigmer.cli.jsonpaths import JsonPathTemplate, compile_path, sort_by
from stigmer.errors import InvalidArgument, StigmerError
from stigmer.resources.execution_events import ACTIVE_PHASES, phase_name
from stigmer.resources.kinds import KindInfo
from stigmer.resources.manifests import dump_yaml, to_manifest_dict

OUTPUT_FORMATS = ("table", "wide", "yaml", "json", "name", "jsonpath=TEMPLATE")
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


def execution_phase_text(execution: Any) -> str:
    """The phase, with what it waits on: `WAITING_FOR_APPROVAL (2 calls)`,
    `IN_PROGRESS (pause requested)`."""
    status = execution.status
    text = phase_name(status.phase)
    if status.phase == execution_pb2.EXECUTION_PHASE_WAITING_FOR_APPROVAL:
        count = len(status.pending_approvals)
        return f"{text} ({count} call{'s' if count != 1 else ''})"
    if status.phase in ACTIVE_PHASES:
        if status.is_cancel_requested:
            return f"{text} (cancel requested)"
        if status.is_pause_requested:
            return f"{text} (pause requested)"
    return text


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
    "Skill": [
        ("LATEST", lambda r: r.status.tags.get("latest", "")[:12] or "-", False),
        ("VERSIONS", lambda r: str(len(r.status.versions)), False),
        ("TAGS", lambda r: ",".join(sorted(r.status.tags)), True),
        ("DESCRIPTION", lambda r: r.spec.description[:60], True),
    ],
    "AgentExecution": [
        ("AGENT", lambda r: r.status.agent_id, False),
        ("PHASE", execution_phase_text, False),
        ("SESSION", lambda r: r.status.session_id, True),
        ("MESSAGES", lambda r: str(len(r.status.messages)), False),
        ("ERROR", lambda r: r.status.error[:60], True),
    ],
}


@dataclass(frozen=True)
class OutputFormat:
    """What `-o` asked for; `template` is set for `jsonpath=`."""

    name: str
    template: JsonPathTemplate | None = None

    @classmethod
    def parse(cls, text: str) -> OutputFormat:
        """Raises: InvalidArgument: an unknown format or an invalid JSONPath template."""
        name, separator, template = text.partition("=")
        if name == "jsonpath" and separator:
            return cls(name, JsonPathTemplate.parse(template))
        if text not in OUTPUT_FORMATS or text.startswith("jsonpath"):
            raise InvalidArgument.for_field(
                "output", f"unknown output format {text!r} (use {', '.join(OUTPUT_FORMATS)})"
            )
        return cls(text)


def qualified_name(kind: KindInfo, resource: Any) -> str:
    """`agent/pr-reviewer`: the kind's command-line name and the slug."""
    return f"{kind.short_names[0]}/{resource.metadata.slug or resource.metadata.id}"


def labels_text(resource: Any) -> str:
    labels = sorted(resource.metadata.labels.items())
    return ",".join(f"{key}={value}" for key, value in labels) or "<none>"


def render_table(
    kind: KindInfo,
    resources: Sequence[Any],
    *,
    wide: bool,
    show_labels: bool = False,
    is_qualified: bool = False,
) -> Table:
    """One kind's table; `is_qualified` names rows `kind/slug` (as `get all` does)."""
    name: Callable[[Any], str] = (
        (lambda r: qualified_name(kind, r)) if is_qualified else (lambda r: r.metadata.slug)
    )
    columns: list[Column] = [("NAME", name, False)]
    if wide:
        columns.append(("ID", lambda r: r.metadata.id, True))
    columns += [c for c in KIND_COLUMNS.get(kind.name, []) if wide or not c[2]]
    columns += [("VERSION", lambda r: str(r.metadata.version), False), ("AGE", _age, False)]
    if show_labels:
        columns.append(("LABELS", labels_text, False))
    table = Table(box=None, pad_edge=False, show_edge=False)
    for header, _, _ in columns:
        table.add_column(header, no_wrap=True)
    for resource in resources:
        table.add_row(*(value(resource) for _, value, _ in columns))
    return table


def sorted_by_field(resources: Sequence[Any], field: str) -> list[Any]:
    """The resources ordered by a JSONPath field of their manifest dict
    (`.metadata.name`, `{.metadata.version}`): numbers numerically, missing last.

    Raises:
        InvalidArgument: the field is not a JSONPath expression (field `sort-by`).
    """
    path = compile_path(field, field="sort-by")
    order = sort_by([to_manifest_dict(r) for r in resources], path)
    return [resources[index] for index in order]


def print_resources(
    kind: KindInfo,
    resources: Sequence[Any],
    output: str,
    *,
    single: bool,
    show_labels: bool = False,
) -> None:
    print_sections([(kind, resources)], output, single=single, show_labels=show_labels)


def print_sections(
    sections: Sequence[tuple[KindInfo, Sequence[Any]]],
    output: str,
    *,
    single: bool = False,
    show_labels: bool = False,
) -> None:
    """Prints resources of one or more kinds; several kinds (`get all`) print a
    table per kind that has any, with rows named `kind/slug`."""
    chosen = OutputFormat.parse(output)
    pairs = [(kind, r) for kind, resources in sections for r in resources]
    everything = [r for _, r in pairs]
    if chosen.name == "yaml":
        sys.stdout.write(dump_yaml(to_manifest_dict(r) for r in everything))
    elif chosen.name in ("json", "jsonpath"):
        items = [to_manifest_dict(r) for r in everything]
        body: Any = items[0] if single else {"items": items}
        if chosen.template is None:
            sys.stdout.write(json.dumps(body, indent=2) + "\n")
        else:
            text = chosen.template.render(body)
            sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    elif chosen.name == "name":
        sys.stdout.writelines(qualified_name(kind, r) + "\n" for kind, r in pairs)
    elif not everything:
        kinds = sections[0][0].plural if len(sections) == 1 else "resources"
        error_console.print(f"No {kinds} found.")
    else:
        is_qualified = len(sections) > 1
        shown = [(kind, resources) for kind, resources in sections if resources]
        for index, (kind, resources) in enumerate(shown):
            if index:
                console.print()
            table = render_table(
                kind,
                resources,
                wide=chosen.name == "wide",
                show_labels=show_labels,
                is_qualified=is_qualified,
            )
            console.print(table)


def print_error(error: StigmerError) -> None:
    error_console.print(Text.assemble(("error: ", "bold red"), error.message))
    for violation in error.violations:
        if violation.description not in error.message:
            error_console.print(Text(f"  {violation.field}: {violation.description}"))
