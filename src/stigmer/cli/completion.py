"""Shell completion: `stigmer completion bash|zsh|fish`, and the candidates
the scripts ask for.

The scripts are typer's: each calls `stigmer` back with `_STIGMER_COMPLETE`
set and the words typed so far, and prints what comes back. Typer makes them
public only as `--install-completion`/`--show-completion`, which guess the
shell; `stigmer completion SHELL` (kubectl's form) takes the two functions
behind those options from typer's modules. That is the one place Stigmer
touches typer's private modules; typer's minor version is pinned, and the
completion tests print each script and drive its protocol end to end. Commands and
options complete from the command tree; kinds from the kinds Stigmer knows;
resource names and execution ids from the server, asked through the SDK with
a short timeout. A shell waits on every Tab, so a server that cannot be
reached means no candidates, silently, never an error in the middle of a
command line.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from typer._completion_classes import completion_init
from typer._completion_shared import get_completion_script

from stigmer.client import Client
from stigmer.errors import StigmerError
from stigmer.resources.execution_events import phase_name
from stigmer.resources.kinds import AGENT_EXECUTION, KINDS, kind_by_alias

COMPLETE_VARIABLE = "_STIGMER_COMPLETE"
SERVER_TIMEOUT_SECONDS = 1.0


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def kinds(incomplete: str) -> list[str]:
    """The kinds, by the name `stigmer get` shows them under."""
    return [kind.short_names[0] for kind in KINDS if kind.short_names[0].startswith(incomplete)]


def _server(ctx: typer.Context) -> str | None:
    address = ctx.params.get("server")
    return address if isinstance(address, str) else None


def _execution_ids(client: Client, incomplete: str) -> list[tuple[str, str]]:
    return [
        (execution.metadata.id, f"{phase_name(execution.status.phase)} {execution.status.agent_id}")
        for execution in client.list_executions()
        if execution.metadata.id.startswith(incomplete)
    ]


def resource_names(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """The names of the resources of the kind typed before (KIND NAME)."""
    kind_alias = ctx.params.get("kind")
    if not isinstance(kind_alias, str):
        return []
    try:
        kind = kind_by_alias(kind_alias)
        with Client(_server(ctx), timeout=SERVER_TIMEOUT_SECONDS) as client:
            if kind is AGENT_EXECUTION:
                return _execution_ids(client, incomplete)
            return [
                (resource.metadata.slug, kind.name)
                for resource in client.list(kind)
                if resource.metadata.slug.startswith(incomplete)
            ]
    except StigmerError:
        return []


def execution_ids(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Execution ids, each with its phase and agent as the help text."""
    try:
        with Client(_server(ctx), timeout=SERVER_TIMEOUT_SECONDS) as client:
            return _execution_ids(client, incomplete)
    except StigmerError:
        return []


def completion(
    ctx: typer.Context, shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish")]
) -> None:
    """Print a shell completion script.

    bash: `source <(stigmer completion bash)` in ~/.bashrc;
    zsh: `source <(stigmer completion zsh)` in ~/.zshrc (after compinit);
    fish: `stigmer completion fish > ~/.config/fish/completions/stigmer.fish`.
    """
    prog_name = ctx.find_root().info_name or "stigmer"
    typer.echo(
        get_completion_script(
            prog_name=prog_name, complete_var=COMPLETE_VARIABLE, shell=shell.value
        )
    )


def register(app: typer.Typer) -> None:
    # The scripts' call-backs are answered only for shells registered here;
    # with the app's own --install-completion options off, nothing else does it.
    completion_init()
    app.command()(completion)
