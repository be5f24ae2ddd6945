"""Resource commands: apply, get, delete."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from stigmer.cli.output import console, print_resources
from stigmer.cli.watching import watch_kind
from stigmer.client import Client
from stigmer.errors import InvalidArgument
from stigmer.resources.kinds import kind_by_alias, kind_by_name
from stigmer.resources.manifests import read_manifest_sources

ServerOption = Annotated[
    str | None,
    typer.Option("--server", help="Server address HOST:PORT [env: STIGMER_SERVER]"),
]
OutputOption = Annotated[str, typer.Option("--output", "-o", help="table, wide, yaml or json")]


def _labels(selectors: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for selector in selectors:
        for pair in selector.split(","):
            key, separator, value = pair.partition("=")
            if not separator or not key.strip():
                raise InvalidArgument.for_field("selector", f"{pair!r} is not key=value")
            labels[key.strip()] = value.strip()
    return labels


def apply(
    filenames: Annotated[
        list[str], typer.Option("--filename", "-f", help="FILE, DIR or - for stdin")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, write nothing")] = False,
    server: ServerOption = None,
) -> None:
    """Create or update resources from YAML manifests, dependencies first."""
    stdin_text = sys.stdin.read() if "-" in filenames else None
    documents = read_manifest_sources(filenames, stdin_text)
    if not documents:
        raise InvalidArgument.for_field("filename", "no resources found in the given files")
    suffix = " (dry run)" if dry_run else ""
    with Client(server) as client:
        for result in client.apply_documents(documents, dry_run=dry_run):
            short = kind_by_name(result.kind).short_names[0]
            console.print(f"{short}/{result.resource.metadata.slug} {result.outcome}{suffix}")


def get(
    kind: Annotated[
        str, typer.Argument(help="agent, agentinstance, session, environment, mcpserver")
    ],
    name: Annotated[str | None, typer.Argument(help="Name, slug or id")] = None,
    output: OutputOption = "table",
    selector: Annotated[
        list[str] | None, typer.Option("--selector", "-l", help="Label filter key=value")
    ] = None,
    phase: Annotated[str, typer.Option("--phase", help="Executions in this phase")] = "",
    agent: Annotated[str, typer.Option("--agent", help="Executions of this agent")] = "",
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Then print a line per change, until Ctrl-C")
    ] = False,
    watch_only: Annotated[
        bool, typer.Option("--watch-only", help="Print only the changes from now on")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Show one resource or list a kind."""
    info = kind_by_alias(kind)
    if watch or watch_only:
        watch_kind(
            info,
            server=server,
            output=output,
            labels=_labels(selector or []),
            name=name,
            is_watch_only=watch_only,
            has_list_filters=bool(phase or agent),
        )
        return
    with Client(server) as client:
        if info.name == "AgentExecution":
            if name is not None:
                print_resources(info, [client.get_execution(name)], output, single=True)
            else:
                items = client.list_executions(phase=phase, agent=agent)
                print_resources(info, items, output, single=False)
            return
        if phase or agent:
            raise InvalidArgument.for_field("phase", "--phase and --agent filter executions only")
        if name is not None:
            print_resources(info, [client.get(info, name)], output, single=True)
        else:
            items = client.list(info, labels=_labels(selector or []))
            print_resources(info, items, output, single=False)


def delete(
    kind: Annotated[str | None, typer.Argument(help="Kind of the resource")] = None,
    name: Annotated[str | None, typer.Argument(help="Name, slug or id")] = None,
    filenames: Annotated[
        list[str] | None, typer.Option("--filename", "-f", help="Delete what a manifest defines")
    ] = None,
    cascade: Annotated[
        str, typer.Option("--cascade", help="background: delete owned resources; orphan: keep them")
    ] = "background",
    server: ServerOption = None,
) -> None:
    """Delete a resource (and what it owns, unless --cascade=orphan)."""
    targets: list[tuple[str, str]] = []
    if filenames:
        stdin_text = sys.stdin.read() if "-" in filenames else None
        documents = read_manifest_sources(filenames, stdin_text)
        # Owned kinds go first so a cascade does not delete them under us.
        for document in sorted(documents, key=lambda d: -d.kind.apply_order):
            metadata = document.resource.metadata  # type: ignore[attr-defined]
            targets.append((document.kind.name, metadata.slug or metadata.name))
    elif kind and name:
        targets.append((kind_by_alias(kind).name, name))
    else:
        raise InvalidArgument.for_field("name", "give KIND NAME or -f FILE")
    with Client(server) as client:
        for target_kind, target_name in targets:
            info = kind_by_alias(target_kind)
            deleted = client.delete(info, target_name, cascade=cascade)
            console.print(f"{info.short_names[0]}/{deleted.metadata.slug} deleted")


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.command()(get)
    app.command()(delete)
