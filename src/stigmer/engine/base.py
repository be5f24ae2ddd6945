"""What the server needs of an engine, whichever runs the executions
(embedded asyncio workers or Temporal workflows): start, stop, and the
signals the execution domain sends it."""

from __future__ import annotations

from typing import Protocol

from stigmer.domain.execution.signals import ExecutionSignals


class Engine(ExecutionSignals, Protocol):
    async def start(self) -> None:
        """Starts taking PENDING executions (after re-queueing abandoned ones)."""

    async def stop(self) -> None:
        """Stops taking work and hands running executions back."""
