"""`stigmer skill push DIR`: a skill folder as a new version of a Skill.

The folder is checked here first, against the limits the server applies
(the server checks again: it trusts no client), so a mistake is reported
with the file and line before anything is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stigmer.cli.output import console
from stigmer.cli.resources import ServerOption
from stigmer.client import Client
from stigmer.resources.skill_archives import read_folder

app = typer.Typer(help="Push skills: folders with a SKILL.md that agents carry.")


@app.command()
def push(
    folder: Annotated[Path, typer.Argument(help="The skill's folder, holding SKILL.md")],
    tag: Annotated[str, typer.Option("--tag", help="Point this tag at the version")] = "",
    name: Annotated[str, typer.Option("--name", help="The skill's name (SKILL.md's)")] = "",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and report, write nothing")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Push FOLDER as a version of a skill; same content, same version."""
    content = read_folder(folder)
    with Client(server) as client:
        response = client.push_skill(content, name=name, tag=tag, dry_run=dry_run)
    skill = response.skill
    what = "new version" if response.is_new_version else "unchanged content"
    tags = ", ".join(response.moved_tags) or "no tag moved"
    suffix = " (dry run)" if dry_run else ""
    console.print(f"skill/{skill.metadata.slug} {response.hash[:12]} {what}; {tags}{suffix}")
