"""`stigmer config get|set|unset|list`: the settings in effect and where they come from.

`set` checks the value against the setting's rule (config.py) before writing,
so a typo fails here, exit 2, not at the next server start. `unset` of a key
the file does not hold is not an error (exit 0, with a note): the end state
the user asked for, no such line in the file, holds either way. Both rewrite
the file atomically.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from stigmer import config
from stigmer.cli.output import console, error_console
from stigmer.resources.secrets import MASK

app = typer.Typer(help="Show and change settings (~/.stigmer/config.yaml).", no_args_is_help=True)
KeyArgument = Annotated[str, typer.Argument(help="e.g. server, store, llm.provider")]
RESOLUTION_ORDER = (
    "Order: flag > STIGMER_* env > config file > (server only) server.json of the running "
    "server of this home > default."
)


def _shown(resolved: config.ResolvedSetting) -> str:
    if resolved.setting.is_secret and resolved.value:
        return MASK
    return resolved.value


@app.command("get")
def get_setting(key: KeyArgument) -> None:
    """Print one setting's value."""
    console.print(_shown(config.resolve(key)))


@app.command("set")
def set_setting(key: KeyArgument, value: str) -> None:
    """Write a setting to the config file (refused, exit 2, unless valid)."""
    config.set_value(key, value)
    console.print(f"{key} set in {config.config_path()}")


@app.command("unset")
def unset_setting(key: KeyArgument) -> None:
    """Remove a setting from the config file (exit 0 also when it was not there)."""
    if config.unset_value(key):
        console.print(f"{key} removed from {config.config_path()}")
    else:
        error_console.print(f"{key} was not set in {config.config_path()}; nothing to remove")
    resolved = config.resolve(key)
    console.print(f"  now {_shown(resolved) or '(empty)'} ({resolved.source})")


@app.command("list", help=f"Every setting, its value and where it comes from. {RESOLUTION_ORDER}")
def list_settings() -> None:
    table = Table(box=None, pad_edge=False, show_edge=False)
    for header in ("KEY", "VALUE", "SOURCE"):
        table.add_column(header)
    for resolved in config.all_settings():
        table.add_row(resolved.setting.key, _shown(resolved), resolved.source)
    console.print(table)
    error_console.print(RESOLUTION_ORDER, style="dim")
