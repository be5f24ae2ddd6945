"""`stigmer get KIND --watch`: the list, then a line per change, until Ctrl-C.

Served by the Watch RPC (list and watch in one stream, so nothing changes
unseen between them), not by polling. Tables print the list as `get` does,
then each change as one row prefixed by its event (ADDED, MODIFIED, DELETED).
With `-o json` each event is one JSON document on one line, with `-o yaml` one
YAML document: {type, resourceVersion, object}. Ctrl-C exits 130, quietly.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from typing import Any

import typer

from stigmer.cli.output import OUTPUT_FORMATS, console, print_resources, render_table
from stigmer.client import AsyncClient, ResourceEvent
from stigmer.errors import InvalidArgument
from stigmer.resources.kinds import KindInfo
from stigmer.resources.manifests import dump_yaml, to_manifest_dict

EXIT_INTERRUPTED = 130
_EVENT_WIDTH = len("MODIFIED") + 1


def watch_kind(
    kind: KindInfo,
    *,
    server: str | None,
    output: str,
    labels: dict[str, str],
    name: str | None = None,
    is_watch_only: bool = False,
    has_list_filters: bool = False,
) -> None:
    """Prints the kind's resources (unless `is_watch_only`), then every change.

    Raises:
        InvalidArgument: an unknown output format, or filters a watch cannot apply.
        typer.Exit: with 130, on Ctrl-C.
    """
    if output not in OUTPUT_FORMATS:
        raise InvalidArgument.for_field(
            "output", f"unknown output format {output!r} (use {', '.join(OUTPUT_FORMATS)})"
        )
    if has_list_filters:
        raise InvalidArgument.for_field("watch", "--phase and --agent cannot be watched; use -l")
    printer = _EventPrinter(kind, output, name)
    try:
        asyncio.run(_watch(kind, server, labels, printer, is_watch_only=is_watch_only))
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


async def _watch(
    kind: KindInfo,
    server: str | None,
    labels: dict[str, str],
    printer: _EventPrinter,
    *,
    is_watch_only: bool,
) -> None:
    async with AsyncClient(server) as client:
        events = client.watch_resources(kind, labels=labels, send_initial_list=not is_watch_only)
        listed: list[ResourceEvent] = []
        is_listing = not is_watch_only
        async for event in events:
            if event.type == "BOOKMARK":
                if is_listing:
                    printer.print_list(listed)
                    is_listing = False
            elif is_listing:
                listed.append(event)
            else:
                printer.print_event(event)


class _EventPrinter:
    def __init__(self, kind: KindInfo, output: str, name: str | None) -> None:
        self.kind = kind
        self.output = output
        self.name = name
        # Change rows keep the list's column widths (growing when a value is
        # wider), so they line up with each other.
        self.widths: list[int] = []

    def _cells(self, resources: list[Any]) -> list[list[str]]:
        """The table `get` prints, as text: the header row, then a row per resource."""
        table = render_table(self.kind, resources, wide=self.output == "wide")
        columns = [[str(column.header), *map(str, column.cells)] for column in table.columns]
        return [list(row) for row in zip(*columns, strict=True)]

    def _widen(self, rows: list[list[str]]) -> None:
        for row in rows:
            self.widths = [
                max(pair) for pair in itertools.zip_longest(self.widths, map(len, row), fillvalue=0)
            ]

    def _is_shown(self, resource: Any) -> bool:
        return self.name is None or self.name in (resource.metadata.slug, resource.metadata.id)

    def print_list(self, events: list[ResourceEvent]) -> None:
        shown = [e for e in events if self._is_shown(e.resource)]
        if self.output in ("json", "yaml"):
            for event in shown:
                self._print_document(event.type, event.resource_version, event.resource)
        else:
            resources = [e.resource for e in shown]
            self._widen(self._cells(resources))
            print_resources(self.kind, resources, self.output, single=False)
        sys.stdout.flush()

    def print_event(self, event: ResourceEvent) -> None:
        if not self._is_shown(event.resource):
            return
        if self.output in ("json", "yaml"):
            self._print_document(event.type, event.resource_version, event.resource)
        else:
            row = self._cells([event.resource])[1]
            self._widen([row])
            cells = "  ".join(
                cell.ljust(width) for cell, width in zip(row, self.widths, strict=True)
            )
            console.print(f"{event.type:<{_EVENT_WIDTH}}{cells}".rstrip(), markup=False)
        sys.stdout.flush()

    def _print_document(self, event_type: str, resource_version: int, resource: Any) -> None:
        document = {
            "type": event_type,
            "resourceVersion": resource_version,
            "object": to_manifest_dict(resource),
        }
        if self.output == "json":
            sys.stdout.write(json.dumps(document) + "\n")
        else:
            sys.stdout.write("---\n" + dump_yaml([document]))
