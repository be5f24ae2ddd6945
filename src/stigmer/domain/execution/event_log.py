"""Recording events: each applied to the stored execution and appended to
its log with the next sequence number, in the caller's transaction. Every
pipeline that changes an execution (record-events, cancel, claim,
end-abandoned) records through here."""

from __future__ import annotations

from collections.abc import Sequence

from stigmer.api.v1 import execution_pb2
from stigmer.domain.execution.steps import execution_relations
from stigmer.pipeline.envelope import as_envelope, encode, now
from stigmer.resources.execution_events import ACTIVE_PHASES, apply_event
from stigmer.resources.kinds import AGENT_EXECUTION
from stigmer.store.base import Transaction

Event = execution_pb2.ExecutionEvent
Update = execution_pb2.ExecutionUpdate


async def record_in(
    transaction: Transaction,
    execution: execution_pb2.AgentExecution,
    events: Sequence[Event],
) -> list[Update]:
    """Applies events to a loaded execution and stores both, in `transaction`."""
    if not events:
        return []
    previous_version = execution.metadata.version
    # Watchers see what a list shows change (phase, message count), not
    # every streamed text delta: those would flood the change log.
    shown_before = (execution.status.phase, len(execution.status.messages))
    updates = []
    for event in events:
        sequence = execution.status.last_sequence + 1
        apply_event(execution, event, sequence)
        updates.append(Update(sequence=sequence, event=event))
    execution.metadata.version = previous_version + 1
    execution.status.audit.updated_at.FromDatetime(now())
    envelope = as_envelope(execution)
    shown_after = (execution.status.phase, len(execution.status.messages))
    await transaction.update(
        encode(AGENT_EXECUTION, envelope, execution_relations(envelope)),
        previous_version,
        is_change_logged=shown_after != shown_before,
    )
    await transaction.append_events(
        execution.metadata.id,
        [(u.sequence, u.event.SerializeToString(deterministic=True)) for u in updates],
    )
    if execution.status.phase not in ACTIVE_PHASES:
        # An ended execution, one waiting for a person or a paused one needs
        # no worker: its lease goes in the same write, whichever engine (or a
        # worker on another machine) recorded it; nothing can reap it as lost.
        await transaction.delete_lease(execution.metadata.id)
    return updates
