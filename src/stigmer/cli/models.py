"""`stigmer model install`: put the default local model in place before the first run.

The first run would assemble it too, but 491 MB written while an execution
waits looks like a hang; installing it up front shows progress, and checks the
result, once. Running it again is cheap (one `stat` against the stamp) and
repairs a damaged file.
"""

from __future__ import annotations

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from stigmer.cli.output import console, error_console
from stigmer.runtime.local_model import is_local_runtime_installed
from stigmer.runtime.model_files import (
    DEFAULT_MODEL,
    ModelFileError,
    check_model_file,
    default_model_path,
    install_model,
)

app = typer.Typer(help="Local models run in the server process (the `local` provider).")


@app.command()
def install() -> None:
    """Assemble the default local model into <home>/models/ and verify its sha256."""
    path = default_model_path()
    try:
        check_model_file(path, DEFAULT_MODEL)
    except ModelFileError:
        with Progress(
            TextColumn(f"Assembling {DEFAULT_MODEL.title}"),
            BarColumn(),
            DownloadColumn(),
            console=error_console,
            transient=True,
        ) as progress:
            task = progress.add_task("assemble", total=DEFAULT_MODEL.size)
            install_model(on_progress=lambda done, _total: progress.update(task, completed=done))
        console.print(f"{DEFAULT_MODEL.title} installed: {path} (sha256 verified)")
    else:
        console.print(f"{DEFAULT_MODEL.title} is already installed: {path} (sha256 verified)")
    if not is_local_runtime_installed():
        error_console.print(
            "note: the local provider also needs llama.cpp: pip install 'stigmer[local]'"
        )
