"""Resource commands: apply, get, delete."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from stigmer.cli.completion import kinds, resource_names
from stigmer.cli.jsonpaths import compile_path
from stigmer.cli.output import (
    OutputFormat,
    console,
    print_resources,
    print_sections,
    qualified_name,
    sorted_by_field,
)
from stigmer.cli.validate import print_warnings
from stigmer.cli.watching import watch_kind
from stigmer.client import Client
from stigmer.errors import InvalidArgument, NotFound, StigmerError
from stigmer.resources.kinds import (
    AGENT_EXECUTION,
    KINDS,
    KindInfo,
    kind_by_alias,
    kind_by_name,
)
from stigmer.resources.manifests import read_manifest_sources, read_source_bytes

ServerOption = Annotated[
    str | None,
    typer.Option("--server", help="Server address HOST:PORT [env: STIGMER_SERVER]"),
]
OutputOption = Annotated[
    str,
    typer.Option("--output", "-o", help="table, wide, yaml, json, name or jsonpath=TEMPLATE"),
]


def _watch_labels(selectors: list[str]) -> dict[str, str]:
    """A watch filters by label equality only (`k=v`, `k==v`); a set-based
    selector is refused rather than silently ignored."""
    labels: dict[str, str] = {}
    for requirement in _joined_selector(selectors).split(","):
        if not requirement.strip():
            continue
        key, separator, value = requirement.replace("==", "=").partition("=")
        if not separator or "!" in key or " " in key.strip() or "(" in value:
            raise InvalidArgument.for_field(
                "selector", f"--watch takes key=value selectors only, not {requirement.strip()!r}"
            )
        labels[key.strip()] = value.strip()
    return labels


def _joined_selector(selectors: list[str]) -> str:
    """Several `-l` are ANDed, which is what a comma means in a selector. The
    text goes to the server unparsed: it is the judge of what a selector is."""
    return ",".join(text for text in selectors if text.strip())


def _kinds_hint(*, with_all: bool) -> str:
    names = ["/".join(k.short_names) for k in KINDS]
    return ", ".join(["all", *names] if with_all else names)


def apply(
    filenames: Annotated[
        list[str], typer.Option("--filename", "-f", help="FILE, DIR or - for stdin")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, write nothing")] = False,
    server: ServerOption = None,
) -> None:
    """Create or update resources from YAML manifests, dependencies first."""
    stdin = read_source_bytes(sys.stdin.buffer) if "-" in filenames else None
    documents = read_manifest_sources(filenames, stdin)
    if not documents:
        raise InvalidArgument.for_field("filename", "no resources found in the given files")
    print_warnings(documents)
    suffix = " (dry run)" if dry_run else ""
    with Client(server) as client:
        for result in client.apply_documents(documents, dry_run=dry_run):
            short = kind_by_name(result.kind).short_names[0]
            console.print(f"{short}/{result.resource.metadata.slug} {result.outcome}{suffix}")


def get(
    kind: Annotated[
        str | None,
        typer.Argument(
            help="all, agent, agentinstance, session, environment, mcpserver, execution, skill",
            autocompletion=kinds,
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Argument(help="Name, slug or id", autocompletion=resource_names)
    ] = None,
    output: OutputOption = "table",
    selector: Annotated[
        list[str] | None,
        typer.Option(
            "--selector",
            "-l",
            help="Label selector: k=v, k!=v, 'k in (a,b)', 'k notin (a)', k, !k; comma is AND",
        ),
    ] = None,
    show_labels: Annotated[
        bool, typer.Option("--show-labels", help="Add a LABELS column to tables")
    ] = False,
    sort_by: Annotated[
        str, typer.Option("--sort-by", help="Sort a list by a JSONPath field: .metadata.name")
    ] = "",
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="A missing NAME is no error: print nothing")
    ] = False,
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
    """Show one resource or list a kind (`all`: every kind)."""
    if kind is None:
        raise InvalidArgument.for_field(
            "kind", f"give the KIND to get: {_kinds_hint(with_all=True)}"
        )
    OutputFormat.parse(output)  # a bad -o or JSONPath fails before any request
    if sort_by:
        compile_path(sort_by, field="sort-by")
    kinds = KINDS if kind.lower() == "all" else (kind_by_alias(kind),)
    if name is not None and len(kinds) > 1:
        raise InvalidArgument.for_field("name", "get all lists every kind; it takes no NAME")
    if (phase or agent) and any(info is not AGENT_EXECUTION for info in kinds):
        raise InvalidArgument.for_field("phase", "--phase and --agent filter executions only")
    if watch or watch_only:
        if len(kinds) > 1 or (name is not None and kinds[0] is AGENT_EXECUTION):
            raise InvalidArgument.for_field("watch", "watch one kind: stigmer get KIND -w")
        watch_kind(
            kinds[0],
            server=server,
            output=output,
            labels=_watch_labels(selector or []),
            name=name,
            is_watch_only=watch_only,
            has_list_filters=bool(phase or agent),
        )
        return
    with Client(server) as client:
        if name is None:
            sections = _list_sections(
                client, kinds, _joined_selector(selector or []), phase, agent, sort_by
            )
            print_sections(sections, output, show_labels=show_labels)
            return
        try:
            found = _get_one(client, kinds[0], name)
        except NotFound:
            if ignore_not_found:
                return
            raise
        print_resources(kinds[0], [found], output, single=True, show_labels=show_labels)


def _get_one(client: Client, info: KindInfo, name: str) -> Any:
    if info is AGENT_EXECUTION:
        return client.get_execution(name)
    return client.get(info, name)


def _list_sections(
    client: Client,
    kinds: Sequence[KindInfo],
    selector: str,
    phase: str,
    agent: str,
    sort_by: str,
) -> list[tuple[KindInfo, list[Any]]]:
    """Each kind's matching resources, sorted by `sort_by` within the kind."""
    sections: list[tuple[KindInfo, list[Any]]] = []
    for info in kinds:
        if info is AGENT_EXECUTION:
            items: list[Any] = client.list_executions(phase=phase, agent=agent, selector=selector)
        else:
            items = client.list(info, selector=selector)
        sections.append((info, sorted_by_field(items, sort_by) if sort_by else items))
    return sections


def _delete_targets(filenames: list[str]) -> list[tuple[KindInfo, str, str]]:
    """(kind, slug or name, where it is defined) of every manifest document,
    owned kinds first so that a cascade does not delete them under us."""
    stdin = read_source_bytes(sys.stdin.buffer) if "-" in filenames else None
    documents = read_manifest_sources(filenames, stdin)
    if not documents:
        raise InvalidArgument.for_field("filename", "no resources found in the given files")
    targets = []
    for document in sorted(documents, key=lambda d: -d.kind.apply_order):
        metadata = document.resource.metadata  # type: ignore[attr-defined]
        targets.append((document.kind, metadata.slug or metadata.name, document.where))
    return targets


def delete(
    kind: Annotated[
        str | None, typer.Argument(help="Kind of the resource", autocompletion=kinds)
    ] = None,
    name: Annotated[
        str | None, typer.Argument(help="Name, slug or id", autocompletion=resource_names)
    ] = None,
    filenames: Annotated[
        list[str] | None,
        typer.Option("--filename", "-f", help="Delete what manifests define: FILE, DIR or -"),
    ] = None,
    cascade: Annotated[
        str, typer.Option("--cascade", help="background: delete owned resources; orphan: keep them")
    ] = "background",
    ignore_not_found: Annotated[
        bool, typer.Option("--ignore-not-found", help="A missing resource is no error")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Delete a skill even while agents refer to it")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Delete a resource (and what it owns, unless --cascade=orphan)."""
    if filenames:
        if kind or name:
            raise InvalidArgument.for_field("filename", "give KIND NAME or -f FILE, not both")
        targets = _delete_targets(filenames)
    elif kind and name:
        targets = [(kind_by_alias(kind), name, "")]
    else:
        raise InvalidArgument.for_field(
            "name", f"give KIND NAME or -f FILE|DIR|- (kinds: {_kinds_hint(with_all=False)})"
        )
    with Client(server) as client:
        for info, target, where in targets:
            try:
                if info is AGENT_EXECUTION:
                    deleted = client.delete_execution(target)
                else:
                    deleted = client.delete(info, target, cascade=cascade, force=force)
            except StigmerError as error:
                if ignore_not_found and isinstance(error, NotFound):
                    continue
                if where:
                    error.message = f"{where}: {error.message}"
                raise
            console.print(f"{qualified_name(info, deleted)} deleted")


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.command()(get)
    app.command()(delete)
