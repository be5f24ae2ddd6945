"""What Ctrl-C does while `stigmer run` or `stigmer logs -f` follows an execution.

The execution runs on the server, not in the command: interrupting the
command stops following it, never the execution. The first Ctrl-C says so
and gives the commands to follow it again and to stop it; a second one
within SECOND_CTRL_C_SECONDS cancels it. Waiting for that second one is
offered only to someone at a terminal, so a script that interrupts the
command does not wait. The exit code is 130 (128 + SIGINT), as for any
command stopped by Ctrl-C, whether the execution was cancelled or not.
"""

from __future__ import annotations

import contextlib
import sys
import time

from rich.text import Text

from stigmer.cli.output import error_console, print_error
from stigmer.client import Client
from stigmer.errors import StigmerError
from stigmer.resources.execution_events import TERMINAL_PHASES, phase_name

EXIT_INTERRUPTED = 130
SECOND_CTRL_C_SECONDS = 3.0
# How long a cancelled execution may take to stop before we stop waiting.
CANCEL_WAIT_SECONDS = 10.0


def _is_interactive() -> bool:
    return sys.stdin.isatty() or error_console.is_terminal


def leave(client: Client, execution_id: str, server: str | None) -> int:
    """Called on the first Ctrl-C: explains, offers to cancel, returns 130."""
    server_option = f" --server {server}" if server else ""
    goes_on = Text(
        f"execution {execution_id} goes on; "
        f"follow it: stigmer logs -f {execution_id}{server_option}; "
        f"stop it: stigmer cancel {execution_id}{server_option}"
    )
    if not _is_interactive():
        error_console.print(goes_on)
        return EXIT_INTERRUPTED
    # The second Ctrl-C counts from the first: the messages are printed inside
    # the try, so one pressed while they are written still cancels.
    try:
        error_console.print(goes_on)
        error_console.print(f"(press Ctrl-C again within {SECOND_CTRL_C_SECONDS:g}s to cancel it)")
        time.sleep(SECOND_CTRL_C_SECONDS)
    except KeyboardInterrupt:
        # A third Ctrl-C stops waiting for the cancellation.
        with contextlib.suppress(KeyboardInterrupt):
            _cancel(client, execution_id)
    return EXIT_INTERRUPTED


def _cancel(client: Client, execution_id: str) -> None:
    try:
        execution = client.cancel(execution_id, "cancelled with Ctrl-C")
        if execution.status.phase not in TERMINAL_PHASES:
            execution = client.wait(execution_id, timeout=CANCEL_WAIT_SECONDS)
    except TimeoutError:
        error_console.print(
            f"execution {execution_id} cancel requested; it stops as soon as its worker does"
        )
        return
    except StigmerError as error:
        print_error(error)
        return
    phase = phase_name(execution.status.phase)
    if phase == "CANCELLED":
        error_console.print(Text(f"execution {execution_id} cancelled"))
    else:
        error_console.print(Text(f"execution {execution_id} ended {phase} before the cancel"))
