"""`stigmer token create|list|revoke`: the access tokens of a server with
`auth: token` (admin only). A token's secret is printed once, by create."""

from __future__ import annotations

from typing import Annotated

import typer
from google.protobuf import timestamp_pb2
from rich.table import Table

from stigmer.cli.output import console
from stigmer.cli.resources import ServerOption
from stigmer.client import Client
from stigmer.resources.principals import ROLES

app = typer.Typer(help="Manage access tokens (admin only): create, list, revoke.")


def _when(moment: timestamp_pb2.Timestamp) -> str:
    if not moment.seconds and not moment.nanos:
        return ""
    return moment.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for")],
    role: Annotated[
        str, typer.Option("--role", help=" | ".join(ROLES), show_default=False)
    ] = "developer",
    server: ServerOption = None,
) -> None:
    """Make a token and print its secret (shown this once; store it safely)."""
    with Client(server) as client:
        created = client.create_token(name, role)
    # Alone on stdout so that `$(stigmer token create ...)` is the secret.
    typer.echo(created.secret)
    typer.echo(
        f"token {created.token.name!r} ({created.token.role}) created; "
        "the secret above is not shown again",
        err=True,
    )


@app.command("list")
def list_tokens(server: ServerOption = None) -> None:
    """List the tokens (never their secrets)."""
    with Client(server) as client:
        tokens = client.list_tokens()
    table = Table(box=None, pad_edge=False, show_edge=False)
    for header in ("NAME", "ROLE", "CREATED", "REVOKED"):
        table.add_column(header)
    for token in tokens:
        table.add_row(token.name, token.role, _when(token.created_at), _when(token.revoked_at))
    console.print(table)


@app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name")],
    server: ServerOption = None,
) -> None:
    """Revoke a token: calls with it fail from now on."""
    with Client(server) as client:
        token = client.revoke_token(name)
    console.print(f"token {token.name!r} revoked")
