"""`stigmer validate`: the checks `apply` makes before it sends anything.

Everything a manifest can be checked for without the server's store is
checked here, offline: YAML, kinds, fields and their shapes, field rules,
slugs, one resource defined twice. References to other resources are the
server's to resolve (they may already exist there), so they are not.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated

import typer
from rich.text import Text

from stigmer.cli.output import console, error_console
from stigmer.errors import InvalidArgument
from stigmer.resources.manifests import (
    ManifestDocument,
    inspect_manifest_sources,
    read_source_bytes,
)

EXIT_INVALID = 2


def print_warnings(documents: Iterable[ManifestDocument]) -> None:
    """The fields each document sets that nothing acts on yet, on stderr."""
    for document in documents:
        for warning in document.warnings:
            error_console.print(Text.assemble(("warning: ", "bold yellow"), warning))


def validate(
    filenames: Annotated[
        list[str], typer.Option("--filename", "-f", help="FILE, DIR or - for stdin")
    ],
) -> None:
    """Check manifests without a server: every document, every problem with its line."""
    stdin = read_source_bytes(sys.stdin.buffer) if "-" in filenames else None
    readings = inspect_manifest_sources(filenames, stdin)
    if not readings:
        raise InvalidArgument.for_field("filename", "no resources found in the given files")
    is_valid = True
    for reading in readings:
        for problem in reading.problems:
            is_valid = False
            error_console.print(Text.assemble(("error: ", "bold red"), str(problem)))
        if reading.document is not None:
            print_warnings([reading.document])
            console.print(Text(f"{reading.document.label} valid"))
    if not is_valid:
        raise typer.Exit(EXIT_INVALID)


def register(app: typer.Typer) -> None:
    app.command()(validate)
