"""Watching a kind: its current list, then every change to it, in order.

A watch is a cursor on the store's change log (store/changes.py). It starts
at a resource version (the sequence of a change): the one a client resumes
after, the newest one ("from now"), or the one its initial list was read at,
in the same read transaction as the list, so list-then-watch has no gap and
no repeat. From there it reads the changes after its cursor and moves the
cursor past them, so a change is sent once and none is skipped.

Delivery is pushed and polled: the store's ChangeSignal wakes every watcher
of this process the moment a write with changes commits, and a watcher reads
the log every POLL_SECONDS anyway, which is how writes made by another server
process on the same database reach it.

Filtering happens on the change's own copy of the resource (org and labels as
of that change). `WatchQuery.matches` is the one place a selector decides.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field

from stigmer.errors import InvalidArgument, Unavailable
from stigmer.pipeline.envelope import Envelope, decode
from stigmer.resources.kinds import DEFAULT_ORG, KindInfo
from stigmer.store.base import ListQuery, Record, Store, Transaction
from stigmer.store.changes import ADDED

BOOKMARK = "BOOKMARK"
# How often a watcher reads the log without being woken (writes of other processes).
POLL_SECONDS = 0.5
# How often an idle watcher is told how far it has read, so that resuming
# from its last event does not fall behind the log's horizon while other
# kinds change.
BOOKMARK_SECONDS = 30.0
_PAGE = 500


@dataclass(frozen=True)
class WatchQuery:
    kind: KindInfo
    org: str = DEFAULT_ORG
    labels: Mapping[str, str] = field(default_factory=dict)
    # Changes after this sequence; 0: from now on.
    resource_version: int = 0
    # First the current list (ADDED each) and a BOOKMARK at its version.
    is_initial_list_sent: bool = False

    def matches(self, record: Record) -> bool:
        return record.org == self.org and all(
            record.labels.get(key) == value for key, value in self.labels.items()
        )


@dataclass(frozen=True)
class WatchEvent:
    type: str  # changes.ADDED, MODIFIED, DELETED, or BOOKMARK
    resource_version: int
    resource: Envelope | None = None


class ResourceWatcher:
    def __init__(self, store: Store, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.is_stopping = False

    def stop(self) -> None:
        """Ends every watch with Unavailable (the server is stopping), and refuses new ones."""
        self.is_stopping = True
        self.store.change_signal.notify()

    async def watch(self, query: WatchQuery) -> AsyncIterator[WatchEvent]:
        """The initial list when asked for, a BOOKMARK, then every matching
        change, until the caller stops iterating.

        Raises:
            InvalidArgument: an initial list and a resource version together.
            FailedPrecondition: the resource version (or the watch, having
                fallen that far behind) is older than the changes kept.
            Unavailable: the server is stopping.
        """
        if query.is_initial_list_sent and query.resource_version:
            raise InvalidArgument.for_field(
                "resource_version", "cannot be combined with send_initial_list"
            )
        if self.is_stopping:
            raise Unavailable("the server is stopping; watch again once it is back")
        kind = query.kind
        listed: list[Envelope] = []
        async with self.store.transaction(write=False) as tx:
            if query.resource_version:
                cursor = query.resource_version
                await tx.list_changes(cursor, (kind.name,), limit=0)  # too old?
            else:
                cursor = await tx.newest_change_sequence()
            if query.is_initial_list_sent:
                listed = await self._list(query, tx)
        for resource in listed:
            yield WatchEvent(ADDED, cursor, resource)
        yield WatchEvent(BOOKMARK, cursor)
        last_sent, last_sent_at = cursor, time.monotonic()
        while True:
            if self.is_stopping:
                raise Unavailable("the server is stopping; watch again once it is back")
            # Taken before the read: a commit after it sets this very event.
            woken = self.store.change_signal.next_change()
            async with self.store.transaction(write=False) as tx:
                changes = await tx.list_changes(cursor, (kind.name,), limit=_PAGE)
                is_page_full = len(changes) == _PAGE
                # Past other kinds' changes too: in this one consistent read,
                # nothing else of this kind committed up to the newest change.
                read_up_to = (
                    changes[-1].sequence if is_page_full else await tx.newest_change_sequence()
                )
            for change in changes:
                if query.matches(change.record):
                    yield WatchEvent(
                        change.change_type, change.sequence, decode(kind, change.record)
                    )
                    last_sent, last_sent_at = change.sequence, time.monotonic()
            cursor = max(cursor, read_up_to)
            if is_page_full:
                continue
            if cursor > last_sent and time.monotonic() - last_sent_at >= BOOKMARK_SECONDS:
                yield WatchEvent(BOOKMARK, cursor)
                last_sent, last_sent_at = cursor, time.monotonic()
            with suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await woken.wait()

    @staticmethod
    async def _list(query: WatchQuery, tx: Transaction) -> list[Envelope]:
        """Every resource the watch matches, page by page in one transaction."""
        listed: list[Envelope] = []
        after = ""
        while True:
            records = await tx.list(
                ListQuery(
                    kind=query.kind.name,
                    org=query.org,
                    labels=query.labels,
                    after_id=after,
                    limit=_PAGE,
                )
            )
            listed += [decode(query.kind, r) for r in records if query.matches(r)]
            if len(records) < _PAGE:
                return listed
            after = records[-1].id
