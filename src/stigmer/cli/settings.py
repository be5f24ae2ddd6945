"""`stigmer config get|set|list`: the settings in effect and where they come from."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from stigmer import config
from stigmer.cli.output import console
from stigmer.resources.secrets import MASK

app = typer.Typer(help="Show and change settings (~/.stigmer/config.yaml).", no_args_is_help=True)


def _shown(resolved: config.ResolvedSetting) -> str:
    if resolved.setting.is_secret and resolved.value:
        return MASK
    return resolved.value


@app.command("get")
def get_setting(
    key: Annotated[str, typer.Argument(help="e.g. server, store, llm.provider")],
) -> None:
    """Print one setting's value."""
    console.print(_shown(config.resolve(key)))


@app.command("set")
def set_setting(key: str, value: str) -> None:
    """Write a setting to the config file."""
    config.set_value(key, value)
    console.print(f"{key} set in {config.config_path()}")


@app.command("list")
def list_settings() -> None:
    """Every setting, its value and where it comes from."""
    table = Table(box=None, pad_edge=False, show_edge=False)
    for header in ("KEY", "VALUE", "SOURCE"):
        table.add_column(header)
    for resolved in config.all_settings():
        table.add_row(resolved.setting.key, _shown(resolved), resolved.source)
    console.print(table)
