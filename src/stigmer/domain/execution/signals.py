"""What the execution domain tells the engine that runs executions."""

from __future__ import annotations

from typing import Protocol


class ExecutionSignals(Protocol):
    def execution_enqueued(self, execution_id: str) -> None:
        """A PENDING execution was committed: a worker may take it."""

    async def cancel_running(self, execution_id: str, reason: str) -> bool:
        """Stops the work of a running execution; False if it runs nowhere here."""

    async def terminate_running(self, execution_id: str, reason: str) -> bool:
        """Stops whatever work the execution still has (it is TERMINATED in
        the store already), without waiting for it; False if none runs here."""


class NoEngine:
    """Signals for a server without an engine (executions stay PENDING)."""

    def execution_enqueued(self, execution_id: str) -> None:
        return None

    async def cancel_running(self, execution_id: str, reason: str) -> bool:
        return False

    async def terminate_running(self, execution_id: str, reason: str) -> bool:
        return False
