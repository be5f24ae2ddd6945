"""The `stigmer` command.

Exit codes scripts can rely on:
  0  success
  1  the request failed (not found, already exists, conflict, precondition, internal)
  2  invalid input: bad YAML, unknown kind or field, invalid value, bad flags
  3  the server cannot be reached
  4  (stigmer run, stigmer logs) the execution was cancelled; a FAILED one exits 1
  130  interrupted with Ctrl-C (an execution being followed goes on)
"""

from __future__ import annotations

import sys

import typer

from stigmer import __version__
from stigmer.cli import (
    consistency,
    doctor,
    executions,
    models,
    resources,
    server,
    settings,
    worker,
)
from stigmer.cli.output import print_error
from stigmer.errors import InvalidArgument, StigmerError, Unavailable

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_UNAVAILABLE = 3

app = typer.Typer(
    name="stigmer",
    help="Stigmer: define agents as YAML, deploy them, run them, inspect everything.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
resources.register(app)
executions.register(app)
consistency.register(app)
app.add_typer(server.app, name="server")
app.add_typer(settings.app, name="config")
doctor.register(app)
app.add_typer(models.app, name="model")
worker.register(app)


@app.command()
def version() -> None:
    """Print the Stigmer version."""
    typer.echo(f"stigmer {__version__}")


def exit_code_of(error: StigmerError) -> int:
    if isinstance(error, InvalidArgument):
        return EXIT_INVALID
    if isinstance(error, Unavailable):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def main() -> None:
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except StigmerError as error:
        print_error(error)
        sys.exit(exit_code_of(error))
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as error:  # click usage errors and the like
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(EXIT_INVALID)
        raise


if __name__ == "__main__":
    main()
