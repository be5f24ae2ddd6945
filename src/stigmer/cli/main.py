"""The `stigmer` command.

Exit codes scripts can rely on:
  0  success; also `-h`/`--help`, `--version`, and a bare `stigmer` (or a bare
     command group such as `stigmer config`), which prints help as kubectl does
  1  the request failed (not found, already exists, conflict, precondition,
     internal); an unexpected error prints one line, STIGMER_DEBUG=1 its traceback
  2  invalid input: bad YAML, unknown kind or field, invalid value; and usage
     errors: an unknown command or option, a missing argument
  3  the server cannot be reached
  4  (stigmer run, stigmer logs) the execution was cancelled; a FAILED one exits 1
  5  (stigmer run, stigmer logs) the execution was terminated
  130  interrupted with Ctrl-C (an execution being followed goes on)

Usage errors are click exceptions, but not necessarily standalone click's:
typer 0.29 raises its own vendored copy of click's classes. Which flavour is
in use is read off a class typer exports (`typer.BadParameter` and its
ancestors), never imported from a module path that a release can move.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated, Any, NoReturn

import typer
from rich.text import Text

from stigmer import __version__
from stigmer.cli import (
    approvals,
    completion,
    consistency,
    describe,
    doctor,
    executions,
    explain,
    lifecycle,
    models,
    resources,
    server,
    settings,
    skills,
    tokens,
    usage,
    validate,
    web_console,
    worker,
)
from stigmer.cli.output import error_console, print_error
from stigmer.errors import InvalidArgument, StigmerError, Unavailable

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130
PROG_NAME = "stigmer"
DEBUG_VARIABLE = "STIGMER_DEBUG"


def _click_class(name: str) -> type[Exception]:
    """One of click's exception classes, in the flavour typer raises."""
    for ancestor in typer.BadParameter.__mro__:
        if ancestor.__name__ == name and issubclass(ancestor, Exception):
            return ancestor
    raise LookupError(f"typer.BadParameter does not derive from a click {name}")


CLICK_EXCEPTION = _click_class("ClickException")
USAGE_ERROR = _click_class("UsageError")
# Raised for a bare group with no_args_is_help; it carries the group's help.
NO_ARGS_IS_HELP: type[Exception] | None = getattr(
    sys.modules[USAGE_ERROR.__module__], "NoArgsIsHelpError", None
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"{PROG_NAME} {__version__}")
        raise typer.Exit(EXIT_OK)


app = typer.Typer(
    name=PROG_NAME,
    help="Stigmer: define agents as YAML, deploy them, run them, inspect everything.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Inherited by every subcommand's context.
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def stigmer(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit"
        ),
    ] = False,
    tls_ca: Annotated[
        str | None,
        typer.Option(
            "--tls-ca", help="CA file that verifies the server (TLS) [env: STIGMER_TLS_CA]"
        ),
    ] = None,
) -> None:
    """Stigmer: define agents as YAML, deploy them, run them, inspect everything."""
    if tls_ca:
        # Every command builds its clients from the settings; the flag wins over them.
        os.environ["STIGMER_TLS_CA"] = tls_ca


resources.register(app)
validate.register(app)
executions.register(app)
approvals.register(app)
lifecycle.register(app)
consistency.register(app)
app.add_typer(server.app, name="server")
app.add_typer(settings.app, name="config")
doctor.register(app)
app.add_typer(models.app, name="model")
app.add_typer(tokens.app, name="token")
app.add_typer(skills.app, name="skill")
worker.register(app)
completion.register(app)
explain.register(app)
describe.register(app)
web_console.register(app)
usage.register(app)


@app.command()
def version() -> None:
    """Print the Stigmer version."""
    typer.echo(f"{PROG_NAME} {__version__}")


def exit_code_of(error: StigmerError) -> int:
    if isinstance(error, InvalidArgument):
        return EXIT_INVALID
    if isinstance(error, Unavailable):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def _print_usage_error(error: Exception) -> NoReturn:
    """What was wrong (with click's closest command or option, when it has
    one) and the help of the command the error is about."""
    context: Any = getattr(error, "ctx", None)
    message: str = error.format_message()  # type: ignore[attr-defined]
    if NO_ARGS_IS_HELP is not None and isinstance(error, NO_ARGS_IS_HELP):
        # Rich help is printed while it is formatted, leaving the message empty;
        # plain help is the message.
        if message:
            typer.echo(message)
        sys.exit(EXIT_OK)
    command = context.command_path if context is not None else PROG_NAME
    error_console.print(Text.assemble(("error: ", "bold red"), message))
    error_console.print(Text(f"Run '{command} --help' for usage."))
    sys.exit(EXIT_INVALID)


def _print_internal_error(error: Exception) -> NoReturn:
    if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
        traceback.print_exception(error)
    else:
        detail = f"internal error: {type(error).__name__}: {error}"
        error_console.print(Text.assemble(("error: ", "bold red"), detail))
        error_console.print(Text(f"Rerun with {DEBUG_VARIABLE}=1 to see the traceback."))
    sys.exit(EXIT_FAILED)


def main() -> None:
    try:
        # Without standalone mode click returns typer.Exit's code instead of
        # exiting, and raises usage errors for us to print.
        code = app(prog_name=PROG_NAME, standalone_mode=False)
        sys.exit(code if isinstance(code, int) else EXIT_OK)
    except StigmerError as error:
        print_error(error)
        sys.exit(exit_code_of(error))
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(EXIT_INTERRUPTED)
    except USAGE_ERROR as error:
        _print_usage_error(error)
    except CLICK_EXCEPTION as error:
        message = error.format_message()  # type: ignore[attr-defined]
        error_console.print(Text.assemble(("error: ", "bold red"), message))
        sys.exit(getattr(error, "exit_code", EXIT_FAILED))
    except Exception as error:
        _print_internal_error(error)


if __name__ == "__main__":
    main()
