"""In-process fan-out of execution updates to live subscribers.

The store's event log is the source of truth; the broker only wakes
subscribers up with updates that were just committed. A subscriber that
falls behind or misses one reads the gap back from the log (see
ExecutionController.subscribe), so the broker may stay simple and lossy.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from stigmer.api.v1 import execution_pb2


class ExecutionBroker:
    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[execution_pb2.ExecutionUpdate]]] = defaultdict(
            set
        )

    def subscribe(self, execution_id: str) -> asyncio.Queue[execution_pb2.ExecutionUpdate]:
        queue: asyncio.Queue[execution_pb2.ExecutionUpdate] = asyncio.Queue()
        self._queues[execution_id].add(queue)
        return queue

    def unsubscribe(
        self, execution_id: str, queue: asyncio.Queue[execution_pb2.ExecutionUpdate]
    ) -> None:
        queues = self._queues.get(execution_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._queues[execution_id]

    def publish(self, execution_id: str, updates: list[execution_pb2.ExecutionUpdate]) -> None:
        for queue in self._queues.get(execution_id, ()):
            for update in updates:
                queue.put_nowait(update)
