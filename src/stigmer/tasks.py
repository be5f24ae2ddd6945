"""Background tasks that cannot die unnoticed.

Every long-lived part (the engines' dispatchers and reapers, the consistency
checker, a worker's heartbeats and tool-server sweeper) runs its loops as
asyncio tasks. A task that raises is otherwise silent until it is garbage
collected, so each is named (it shows in task dumps and in the log) and
guarded: an unexpected exception is logged with its traceback the moment it
happens. This module knows no layer, so every layer can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

logger = logging.getLogger(__name__)


def guarded_task(name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
    """A named background task whose unexpected death is logged.

    It takes a coroutine function, not a coroutine: a task cancelled before
    it starts must not leave a coroutine that was never awaited.
    """

    async def guard() -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("background task %s died", name)
            raise

    return asyncio.create_task(guard(), name=name)


async def cancel_tasks(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancels background tasks and waits until each has stopped.

    Raises:
        Exception: what a task died of before it was cancelled (already logged).
    """
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
