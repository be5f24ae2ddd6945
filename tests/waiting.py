"""Waiting for something to happen, with a deadline and without sleeping as a wait.

Every wait raises when its deadline passes, with a description of what it
waited for: a helper that returned False would leave the failure to each
caller's `assert`, and a caller that forgot it would test nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from stigmer.api.v1 import execution_pb2
from stigmer.client import Client
from stigmer.resources.execution_events import TERMINAL_PHASES

# Generous: two shared cores under a full suite make seconds out of milliseconds.
WAIT_SECONDS = 30.0
_POLL_SECONDS = 0.02


def wait_until(condition: Callable[[], bool], *, what: str, within: float = WAIT_SECONDS) -> None:
    """Polls `condition` until it holds.

    Raises:
        AssertionError: it did not hold within `within` seconds (naming `what`).
    """
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(_POLL_SECONDS)


async def wait_until_async(
    condition: Callable[[], bool], *, what: str, within: float = WAIT_SECONDS
) -> None:
    """`wait_until` for code running on the event loop.

    Raises:
        AssertionError: it did not hold within `within` seconds (naming `what`).
    """
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(_POLL_SECONDS)


def wait_for_end(
    client: Client, execution_id: str, *, within: float = WAIT_SECONDS
) -> execution_pb2.AgentExecution:
    """The execution once it is in a terminal phase.

    Raises:
        AssertionError: it had not ended within `within` seconds.
    """
    found: list[execution_pb2.AgentExecution] = []

    def has_ended() -> bool:
        found[:] = [client.get_execution(execution_id)]
        return found[0].status.phase in TERMINAL_PHASES

    wait_until(has_ended, what=f"execution {execution_id} to end", within=within)
    return found[0]
