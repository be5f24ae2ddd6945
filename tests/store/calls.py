"""What the store suites are written with: records to store, and calls that
each run in a transaction of their own.

Tests take `store` (open, empty) and `run` (the test's event loop, see
conftest.py) and run these coroutines with `run(...)`. The fixtures' types are
here too, for the annotations of the tests that take them.
"""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from stigmer.store.base import Change, ListQuery, Record, Store

T = TypeVar("T")


class Run(Protocol):
    """The `run` fixture: runs a coroutine on the test's event loop."""

    def __call__(self, coroutine: Coroutine[Any, Any, T], /) -> T: ...


class StoreFactory(Protocol):
    """The `store_factory` fixture: makes a closed store of the test's backend on the
    test's one database; options are the backend's constructor options (every backend
    takes `changes_kept`)."""

    def __call__(self, **options: Any) -> Store: ...


def make_record(slug: str, *, kind: str = "agent", org: str = "org-1", **columns: Any) -> Record:
    """A version-1 record with a random id (so id order is not insertion order)."""
    fields: dict[str, Any] = {"id": uuid.uuid4().hex, "version": 1, "data": b"\x00body\xff"}
    return Record(kind=kind, org=org, slug=slug, **(fields | columns))


def make_full_record(slug: str, tag: str, **columns: Any) -> Record:
    """A record with every column set: raw bytes, labels with '.' and '/' in a key."""
    return make_record(
        slug,
        owner_id=f"user-{tag}",
        agent_id=f"agent-{tag}",
        agent_instance_id=f"instance-{tag}",
        session_id=f"session-{tag}",
        phase=tag.upper(),
        labels={"app.kubernetes.io/name": tag, "tier": "gold"},
        data=bytes(range(256)) + tag.encode(),
        **columns,
    )


async def insert_all(store: Store, *records: Record) -> None:
    async with store.transaction() as tx:
        for record in records:
            await tx.insert(record)


async def fetch(store: Store, record: Record) -> Record | None:
    async with store.transaction(write=False) as tx:
        return await tx.get(record.kind, record.id)


async def fetch_by_slug(store: Store, record: Record) -> Record | None:
    async with store.transaction(write=False) as tx:
        return await tx.get_by_slug(record.kind, record.org, record.slug)


async def count(store: Store, kind: str = "agent") -> int:
    async with store.transaction(write=False) as tx:
        return await tx.count(kind)


async def list_ids(store: Store, kind: str = "agent", **filters: Any) -> list[str]:
    async with store.transaction(write=False) as tx:
        return [record.id for record in await tx.list(ListQuery(kind, **filters))]


async def update(store: Store, record: Record, expected_version: int) -> None:
    async with store.transaction() as tx:
        await tx.update(record, expected_version)


async def delete(store: Store, record: Record) -> bool:
    async with store.transaction() as tx:
        return await tx.delete(record.kind, record.id)


async def changes_after(store: Store, after: int = 0, *kinds: str) -> list[Change]:
    async with store.transaction(write=False) as tx:
        return await tx.list_changes(after, kinds)
