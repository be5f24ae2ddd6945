"""The change log: every resource write, numbered, for watchers.

Each insert, update and delete of a resource also appends one change row in
the same transaction: a rolled-back write leaves no change, and a committed
one always has its change. The row holds the resource as of that change
(a DELETED change carries the last state) and a sequence number that only
grows. That number is the "resource version" a watch resumes after, like
Kubernetes' resourceVersion: reading the changes after N gives every write
that committed after the one numbered N, in commit order.

The log is bounded: the write that takes a sequence past a multiple of
COMPACTION_EVERY drops all but the newest `changes_kept` changes and moves
the horizon up. Reading after a sequence below the horizon is
FailedPrecondition (Kubernetes answers 410 Gone), never a silent gap.

`ChangeSignal` wakes the watchers of this process when a write with changes
commits; watchers also poll the log, which is how changes written by another
server process on the same database reach them.
"""

from __future__ import annotations

import asyncio

from stigmer.errors import FailedPrecondition

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
CHANGE_TYPES = (ADDED, MODIFIED, DELETED)

# How many of the newest changes the log keeps: minutes of a busy server's
# writes, enough for a watcher to reconnect; older resumes list again.
CHANGES_KEPT = 10_000
# Compaction runs in the write whose sequence reaches a multiple of this,
# so the log holds at most CHANGES_KEPT + COMPACTION_EVERY changes.
COMPACTION_EVERY = 100


def too_old(after: int, horizon: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"resource version {after} is too old: changes up to {horizon} were compacted; "
        "list again and watch from the list's resource version",
        facts={"resource_version": str(after), "oldest_resource_version": str(horizon)},
    )


class ChangeSignal:
    """Wakes everyone waiting when changes commit (in this process only).

    A waiter takes `next_change()` BEFORE reading the log, then waits on it:
    a commit between the read and the wait has set that very event already,
    so no wake-up is lost.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()
