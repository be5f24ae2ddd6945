"""The store interface every backend implements.

Resources are stored as opaque serialized bytes beside the columns that are
queried: kind, org, slug (unique together), owner and the relation columns.
Every question the domain asks is an indexed lookup, never a scan:
"does this slug exist?" is the unique index, get-or-create is
insert-if-absent on it, and an update is a compare-and-swap on `version`.

All access happens inside a transaction: `async with store.transaction() as
tx`. A write transaction serializes with other writers; leaving the block
with an exception rolls everything back.

Every resource write also appends to the change log (store/changes.py) in
the same transaction; watchers read it with `list_changes`.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from stigmer.resources.selectors import Requirement, requirements_from_labels
from stigmer.store.changes import ChangeSignal
from stigmer.store.usage_records import Grouping, UsageQuery, UsageRecord, UsageSum

# The records of one page of a list, and the leases of one read of the
# expired ones, unless the caller asks for another number.
PAGE_SIZE = 100
# The entries of one read of a log (the change log, a resource's event log):
# entries are small and read in order, so a read takes more of them.
LOG_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Record:
    """One stored resource: its indexed columns and its serialized body."""

    kind: str
    id: str
    org: str
    slug: str
    version: int
    data: bytes
    owner_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    agent_id: str = ""
    agent_instance_id: str = ""
    session_id: str = ""
    phase: str = ""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A page of one kind, filtered by indexed columns, ordered by id.

    Empty filters match everything; `after_id` is the cursor of the previous
    page (ids sort by creation time). `labels` (every pair must match) and
    `selector` (every requirement must hold) filter on labels inside the
    query itself, so a page holds `limit` matches, not `limit` rows filtered
    afterwards.
    """

    kind: str
    org: str | None = None
    owner_id: str | None = None
    agent_id: str | None = None
    agent_instance_id: str | None = None
    session_id: str | None = None
    phase: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    selector: tuple[Requirement, ...] = ()
    after_id: str = ""
    limit: int = PAGE_SIZE

    def label_requirements(self) -> tuple[Requirement, ...]:
        """`labels` and `selector` as one list of requirements, all to hold."""
        return requirements_from_labels(self.labels) + self.selector


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change log: a write of `record` (as it was after the
    write; for DELETED, as it was before), numbered `sequence`."""

    sequence: int
    change_type: str  # changes.ADDED, MODIFIED or DELETED
    record: Record


@dataclass(frozen=True, slots=True)
class Lease:
    """A claim on a resource by a worker, valid until `expires_at` (epoch seconds)."""

    resource_id: str
    owner: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A principal's token as the store keeps it: the SHA-256 hash of the
    secret (never the secret), its role, and when it was made and revoked
    (epoch seconds; None while it is valid)."""

    name: str
    role: str
    token_hash: str
    created_at: float
    revoked_at: float | None = None


class Transaction(Protocol):
    async def get(self, kind: str, resource_id: str) -> Record | None: ...

    async def get_by_slug(self, kind: str, org: str, slug: str) -> Record | None: ...

    async def insert(self, record: Record) -> None:
        """Inserts a new record.

        Raises:
            AlreadyExists: (kind, org, slug) or the id is taken; carries the existing id.
        """
        ...

    async def insert_if_absent(self, record: Record) -> tuple[Record, bool]:
        """Inserts unless (kind, org, slug) is taken; returns (the stored record, inserted?)."""
        ...

    async def update(
        self, record: Record, expected_version: int, *, is_change_logged: bool = True
    ) -> None:
        """Replaces the record whose version is still `expected_version`.

        With `is_change_logged=False` no MODIFIED change is logged: for
        writes no watcher needs to see (an execution's streamed text).

        Raises:
            Conflict: the stored version differs.
            NotFound: the record is gone.
        """
        ...

    async def delete(self, kind: str, resource_id: str) -> bool:
        """Deletes the record, its event log and its lease."""
        ...

    # -- the change log (store/changes.py), ordered by sequence ------------

    async def list_changes(
        self, after: int, kinds: Sequence[str] = (), limit: int = LOG_PAGE_SIZE
    ) -> builtins.list[Change]:
        """The changes numbered above `after` (of `kinds`, when given), oldest first.

        Changes written in this transaction show only once it has committed
        (PostgreSQL writes them at commit).

        Raises:
            FailedPrecondition: `after` is below the horizon: changes after
                it were compacted away (see changes.too_old).
        """
        ...

    async def newest_change_sequence(self) -> int:
        """The sequence of the newest committed change (the horizon when none is kept)."""
        ...

    async def compact_changes(self, keep: int) -> int:
        """Drops all but the newest `keep` changes; returns the new horizon.

        Runs by itself as changes are written; callable for maintenance and tests.
        """
        ...

    async def list(self, query: ListQuery) -> list[Record]: ...

    async def count(self, kind: str) -> int: ...

    def discard(self) -> None:
        """Roll back instead of committing when the block ends (dry runs)."""
        ...

    # -- a resource's event log (execution updates), ordered by sequence ---

    async def append_events(self, resource_id: str, events: Sequence[tuple[int, bytes]]) -> None:
        """Appends (sequence, data) pairs, in any order.

        Raises:
            Internal: a sequence is already logged (or twice in `events`); the
                logged event is kept and the transaction stays usable.
        """
        ...

    async def list_events(
        self, resource_id: str, after_sequence: int, limit: int = LOG_PAGE_SIZE
    ) -> builtins.list[tuple[int, bytes]]:
        """The (sequence, data) pairs above `after_sequence`, lowest first, at most
        `limit` of them (a negative limit: all)."""
        ...

    # -- leases: which worker holds a resource, until when ------------------

    async def put_lease(self, lease: Lease) -> None:
        """Creates or replaces the lease on lease.resource_id."""
        ...

    async def get_lease(self, resource_id: str) -> Lease | None: ...

    async def delete_lease(self, resource_id: str) -> None:
        """Releases the lease on the resource, if it has one."""
        ...

    async def list_expired_leases(self, now: float, limit: int = PAGE_SIZE) -> builtins.list[Lease]:
        """The leases that expired before `now` (expires_at < now), soonest-expired first."""
        ...

    # -- access tokens (store/access_tokens.py): who may call the server ----

    async def put_access_token(self, token: AccessToken) -> None:
        """Creates a token, or replaces a revoked one of the same name.

        Raises:
            AlreadyExists: a valid token has that name.
        """
        ...

    async def get_access_token(self, token_hash: str) -> AccessToken | None: ...

    async def list_access_tokens(self) -> builtins.list[AccessToken]:
        """Every token, revoked ones too, by name."""
        ...

    async def revoke_access_token(self, name: str, at: float) -> AccessToken | None:
        """Marks the token revoked (a revoked one stays as it was); None when
        no token has that name."""
        ...

    # -- artifacts (store/*/artifacts.py): bytes a resource owns, by hash ---

    async def put_artifact(self, owner_id: str, digest: str, data: bytes) -> bool:
        """Stores `data` under (owner, hash) unless it is there; True when stored now."""
        ...

    async def get_artifact(self, owner_id: str, digest: str) -> bytes | None: ...

    async def delete_artifacts(self, owner_id: str) -> int:
        """Deletes every artifact of the owner; returns how many."""

    # -- usage records (store/usage_records.py): one per model call --------

    async def insert_usage(self, record: UsageRecord) -> bool:
        """Inserts the record; False (and nothing written) when its
        (execution_id, call_id) is recorded already."""
        ...

    async def sum_usage(
        self, query: UsageQuery, group_by: Grouping | None
    ) -> builtins.list[UsageSum]:
        """The query's records summed: one row (key "") without `group_by`,
        else one per value of that column, in its order."""
        ...


class Store(Protocol):
    """A transactional resource store. Open it before use and close it after."""

    url: str
    # Set after each commit that logged changes, for this process's watchers.
    change_signal: ChangeSignal

    async def open(self) -> None:
        """Connects and brings the schema to the newest version."""
        ...

    async def close(self) -> None: ...

    def transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """A transaction; committed when the block exits normally, rolled back
        when it raises or when `discard()` was called.

        Raises:
            Internal: a transaction is opened inside another in the same task
                (it would deadlock; pass the open transaction down instead).
        """
        ...
