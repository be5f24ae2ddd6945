"""The lossless stream of an execution's updates.

A subscriber gets the current state (or the updates after the sequence it
last saw, read back from the event log), then every update in order until
the execution ends. Live updates come from the broker (broker.py), which
is lossy: a gap in the sequence numbers is read back from the log, so a
client that reconnects with its last sequence misses nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from stigmer.api.v1 import execution_pb2
from stigmer.domain.execution.broker import ExecutionBroker
from stigmer.errors import NotFound
from stigmer.resources.execution_events import TERMINAL_PHASES
from stigmer.resources.kinds import AGENT_EXECUTION
from stigmer.store.base import Store

Update = execution_pb2.ExecutionUpdate
Event = execution_pb2.ExecutionEvent
# Events read back from the log per store read.
REPLAY_PAGE_SIZE = 500


def is_terminal_update(update: Update) -> bool:
    event = update.event
    if event.WhichOneof("change") == "phase_changed":
        return event.phase_changed.phase in TERMINAL_PHASES
    if event.WhichOneof("change") == "snapshot":
        return event.snapshot.status.phase in TERMINAL_PHASES
    return False


class ExecutionStream:
    def __init__(self, store: Store, broker: ExecutionBroker) -> None:
        self.store = store
        self.broker = broker

    async def subscribe(self, execution_id: str, after_sequence: int = 0) -> AsyncIterator[Update]:
        """The current state (or the updates after `after_sequence`), then
        every update in order, until the execution ends.

        Raises:
            NotFound: no such execution.
        """
        queue = self.broker.subscribe(execution_id)
        try:
            async with self.store.transaction(write=False) as transaction:
                record = await transaction.get(AGENT_EXECUTION.name, execution_id)
            if record is None:
                raise NotFound(AGENT_EXECUTION.name, execution_id)
            execution = execution_pb2.AgentExecution.FromString(record.data)
            if after_sequence <= 0:
                last = execution.status.last_sequence
                yield Update(sequence=last, event=Event(snapshot=execution))
            else:
                last = after_sequence
                async for update in self._replay(execution_id, last):
                    yield update
                    last = update.sequence
            if execution.status.phase in TERMINAL_PHASES and last >= execution.status.last_sequence:
                return
            while True:
                update = await queue.get()
                if update.sequence <= last:
                    continue
                if update.sequence > last + 1:
                    # Something was published before we listened, or the
                    # log got ahead of the broker: read the gap back.
                    async for missed in self._replay(execution_id, last, until=update.sequence):
                        yield missed
                        last = missed.sequence
                        if is_terminal_update(missed):
                            return
                yield update
                last = update.sequence
                if is_terminal_update(update):
                    return
        finally:
            self.broker.unsubscribe(execution_id, queue)

    async def _replay(
        self, execution_id: str, after: int, *, until: int | None = None
    ) -> AsyncIterator[Update]:
        while True:
            async with self.store.transaction(write=False) as transaction:
                page = await transaction.list_events(execution_id, after, limit=REPLAY_PAGE_SIZE)
            for sequence, data in page:
                if until is not None and sequence >= until:
                    return
                yield Update(sequence=sequence, event=Event.FromString(data))
                after = sequence
            if len(page) < REPLAY_PAGE_SIZE:
                return
