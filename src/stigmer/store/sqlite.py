"""The SQLite backend: the default store, a single file in WAL mode.

The stdlib driver is synchronous. SQLite answers an indexed statement in
microseconds, so statements run directly on the event loop; what must not
happen is two transactions interleaving on the one connection, so an
asyncio lock serializes transactions. Write transactions start with
BEGIN IMMEDIATE: a deferred BEGIN that later writes fails at once with
"database is locked" when another process writes (the busy timeout does not
cover the upgrade).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from stigmer.errors import AlreadyExists, Conflict, Internal, NotFound, Unavailable
from stigmer.faults import crash_point
from stigmer.resources.selectors import Operator, Requirement
from stigmer.store.base import Change, Lease, ListQuery, Record
from stigmer.store.changes import (
    ADDED,
    CHANGES_KEPT,
    COMPACTION_EVERY,
    DELETED,
    MODIFIED,
    ChangeSignal,
    too_old,
)
from stigmer.store.sqlite_access_tokens import SqliteAccessTokens
from stigmer.store.sqlite_schema import MIGRATIONS

_COLUMNS = (
    "kind, id, org, slug, version, data, owner_id, labels, "
    "agent_id, agent_instance_id, session_id, phase"
)
_FILTER_COLUMNS = ("org", "owner_id", "agent_id", "agent_instance_id", "session_id", "phase")


def _label_clause(requirement: Requirement) -> tuple[str, list[Any]]:
    """The WHERE clause of one label requirement over the JSON labels column.

    json_extract of a missing key is NULL, so "absent or different" reads
    `IS NOT` / `IS NULL OR NOT IN`; label keys never hold a `"`.
    """
    path = f'$."{requirement.key}"'
    values = list(requirement.values)
    marks = ", ".join("?" * len(values))
    match requirement.operator:
        case Operator.EQUALS:
            return "json_extract(labels, ?) = ?", [path, *values]
        case Operator.NOT_EQUALS:
            return "json_extract(labels, ?) IS NOT ?", [path, *values]
        case Operator.IN:
            return f"json_extract(labels, ?) IN ({marks})", [path, *values]
        case Operator.NOT_IN:
            return (
                f"(json_type(labels, ?) IS NULL OR json_extract(labels, ?) NOT IN ({marks}))",
                [path, path, *values],
            )
        case Operator.EXISTS:
            return "json_type(labels, ?) IS NOT NULL", [path]
        case Operator.DOES_NOT_EXIST:
            return "json_type(labels, ?) IS NULL", [path]


_current_transaction: contextvars.ContextVar[SqliteTransaction | None] = contextvars.ContextVar(
    "stigmer_sqlite_transaction", default=None
)


def _to_record(row: tuple[Any, ...]) -> Record:
    return Record(
        kind=row[0],
        id=row[1],
        org=row[2],
        slug=row[3],
        version=row[4],
        data=bytes(row[5]),
        owner_id=row[6],
        labels=json.loads(row[7]),
        agent_id=row[8],
        agent_instance_id=row[9],
        session_id=row[10],
        phase=row[11],
    )


def _to_row(record: Record) -> tuple[Any, ...]:
    return (
        record.kind,
        record.id,
        record.org,
        record.slug,
        record.version,
        record.data,
        record.owner_id,
        json.dumps(dict(record.labels), sort_keys=True),
        record.agent_id,
        record.agent_instance_id,
        record.session_id,
        record.phase,
    )


class SqliteTransaction(SqliteAccessTokens):
    def __init__(self, connection: sqlite3.Connection, *, changes_kept: int) -> None:
        self._connection = connection
        self._changes_kept = changes_kept
        self.is_discarded = False
        self.is_open = True
        self.has_written = False
        self.has_changes = False
        # The task that opened it: only that task nesting a transaction
        # would deadlock; other tasks just wait for the lock.
        self.task = asyncio.current_task()

    def discard(self) -> None:
        self.is_discarded = True

    def _one(self, sql: str, parameters: tuple[Any, ...]) -> Record | None:
        row = self._connection.execute(sql, parameters).fetchone()
        return _to_record(row) if row is not None else None

    async def get(self, kind: str, resource_id: str) -> Record | None:
        return self._one(
            f"SELECT {_COLUMNS} FROM resources WHERE id = ? AND kind = ?", (resource_id, kind)
        )

    async def get_by_slug(self, kind: str, org: str, slug: str) -> Record | None:
        return self._one(
            f"SELECT {_COLUMNS} FROM resources WHERE kind = ? AND org = ? AND slug = ?",
            (kind, org, slug),
        )

    async def insert(self, record: Record) -> None:
        stored, inserted = await self.insert_if_absent(record)
        if not inserted:
            raise AlreadyExists(record.kind, record.slug, stored.id, org=record.org)

    async def insert_if_absent(self, record: Record) -> tuple[Record, bool]:
        self.has_written = True
        try:
            cursor = self._connection.execute(
                f"INSERT INTO resources ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (kind, org, slug) DO NOTHING",
                _to_row(record),
            )
        except sqlite3.IntegrityError as error:
            # Only the primary key is left to collide: the same id, reused.
            existing = self._one(f"SELECT {_COLUMNS} FROM resources WHERE id = ?", (record.id,))
            if existing is None:
                raise Internal(f"insert of {record.kind} {record.id} failed: {error}") from error
            raise AlreadyExists(
                existing.kind, existing.slug, existing.id, org=existing.org
            ) from None
        if cursor.rowcount == 1:
            self._log_change(ADDED, record)
            return record, True
        existing = await self.get_by_slug(record.kind, record.org, record.slug)
        if existing is None:
            raise Internal(
                f"insert of {record.kind} {record.slug!r} was ignored but no row holds it"
            )
        return existing, False

    async def update(
        self, record: Record, expected_version: int, *, is_change_logged: bool = True
    ) -> None:
        self.has_written = True
        row = _to_row(record)
        cursor = self._connection.execute(
            "UPDATE resources SET org = ?, slug = ?, version = ?, data = ?, owner_id = ?, "
            "labels = ?, agent_id = ?, agent_instance_id = ?, session_id = ?, phase = ? "
            "WHERE id = ? AND kind = ? AND version = ?",
            (*row[2:], record.id, record.kind, expected_version),
        )
        if cursor.rowcount == 1:
            if is_change_logged:
                self._log_change(MODIFIED, record)
            return
        current = await self.get(record.kind, record.id)
        if current is None:
            raise NotFound(record.kind, record.id)
        raise Conflict(record.kind, record.id, expected_version, current.version)

    async def delete(self, kind: str, resource_id: str) -> bool:
        self.has_written = True
        # fetchall: a RETURNING statement is done only once every row was read.
        rows = self._connection.execute(
            f"DELETE FROM resources WHERE id = ? AND kind = ? RETURNING {_COLUMNS}",
            (resource_id, kind),
        ).fetchall()
        if not rows:
            return False
        self._log_change(DELETED, _to_record(rows[0]))
        self._connection.execute(
            "DELETE FROM resource_events WHERE resource_id = ?", (resource_id,)
        )
        self._connection.execute("DELETE FROM leases WHERE resource_id = ?", (resource_id,))
        return True

    # -- the change log -------------------------------------------------------

    def _log_change(self, change_type: str, record: Record) -> None:
        # SQLite runs one writer at a time, so numbers commit in order as they
        # are handed out; the row goes in right away.
        self.has_changes = True
        cursor = self._connection.execute(
            f"INSERT INTO resource_changes (change_type, {_COLUMNS}) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (change_type, *_to_row(record)),
        )
        sequence = cursor.lastrowid
        if sequence is not None and sequence % COMPACTION_EVERY == 0:
            self._compact(sequence - self._changes_kept)

    def _horizon(self) -> int:
        row = self._connection.execute(
            "SELECT compacted_through FROM resource_change_horizon WHERE id = 1"
        ).fetchone()
        return int(row[0]) if row is not None else 0

    def _compact(self, through: int) -> int:
        horizon = self._horizon()
        if through <= horizon:
            return horizon
        self._connection.execute("DELETE FROM resource_changes WHERE sequence <= ?", (through,))
        self._connection.execute(
            "UPDATE resource_change_horizon SET compacted_through = ? WHERE id = 1", (through,)
        )
        return through

    async def list_changes(
        self, after: int, kinds: Sequence[str] = (), limit: int = 1000
    ) -> list[Change]:
        horizon = self._horizon()
        if after < horizon:
            raise too_old(after, horizon)
        clauses = ["sequence > ?"]
        parameters: list[Any] = [after]
        if kinds:
            clauses.append(f"kind IN ({', '.join('?' for _ in kinds)})")
            parameters += list(kinds)
        parameters.append(limit)
        rows = self._connection.execute(
            f"SELECT sequence, change_type, {_COLUMNS} FROM resource_changes "
            f"WHERE {' AND '.join(clauses)} ORDER BY sequence LIMIT ?",
            parameters,
        ).fetchall()
        return [Change(int(row[0]), row[1], _to_record(row[2:])) for row in rows]

    async def newest_change_sequence(self) -> int:
        row = self._connection.execute("SELECT MAX(sequence) FROM resource_changes").fetchone()
        newest = int(row[0]) if row is not None and row[0] is not None else 0
        return max(newest, self._horizon())

    async def compact_changes(self, keep: int) -> int:
        self.has_written = True
        return self._compact(await self.newest_change_sequence() - max(keep, 0))

    # -- a resource's event log -------------------------------------------------

    async def append_events(self, resource_id: str, events: Sequence[tuple[int, bytes]]) -> None:
        self.has_written = True
        try:
            self._connection.executemany(
                "INSERT INTO resource_events (resource_id, sequence, data) VALUES (?, ?, ?)",
                [(resource_id, sequence, data) for sequence, data in events],
            )
        except sqlite3.IntegrityError as error:
            raise Internal(f"event sequence of {resource_id} already logged: {error}") from error

    async def list_events(
        self, resource_id: str, after_sequence: int, limit: int = 1000
    ) -> list[tuple[int, bytes]]:
        rows = self._connection.execute(
            "SELECT sequence, data FROM resource_events WHERE resource_id = ? AND sequence > ? "
            "ORDER BY sequence LIMIT ?",
            (resource_id, after_sequence, limit),
        ).fetchall()
        return [(int(sequence), bytes(data)) for sequence, data in rows]

    async def put_lease(self, lease: Lease) -> None:
        self.has_written = True
        self._connection.execute(
            "INSERT INTO leases (resource_id, owner, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (resource_id) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at",
            (lease.resource_id, lease.owner, lease.expires_at),
        )

    async def get_lease(self, resource_id: str) -> Lease | None:
        row = self._connection.execute(
            "SELECT resource_id, owner, expires_at FROM leases WHERE resource_id = ?",
            (resource_id,),
        ).fetchone()
        return Lease(row[0], row[1], float(row[2])) if row is not None else None

    async def delete_lease(self, resource_id: str) -> None:
        self.has_written = True
        self._connection.execute("DELETE FROM leases WHERE resource_id = ?", (resource_id,))

    async def list_expired_leases(self, now: float, limit: int = 100) -> list[Lease]:
        rows = self._connection.execute(
            "SELECT resource_id, owner, expires_at FROM leases WHERE expires_at < ? "
            "ORDER BY expires_at LIMIT ?",
            (now, limit),
        ).fetchall()
        return [Lease(row[0], row[1], float(row[2])) for row in rows]

    async def list(self, query: ListQuery) -> list[Record]:
        clauses = ["kind = ?"]
        parameters: list[Any] = [query.kind]
        for column in _FILTER_COLUMNS:
            value = getattr(query, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        for requirement in query.label_requirements():
            clause, values = _label_clause(requirement)
            clauses.append(clause)
            parameters += values
        if query.after_id:
            clauses.append("id > ?")
            parameters.append(query.after_id)
        parameters.append(query.limit)
        rows = self._connection.execute(
            f"SELECT {_COLUMNS} FROM resources WHERE {' AND '.join(clauses)} ORDER BY id LIMIT ?",
            parameters,
        ).fetchall()
        return [_to_record(row) for row in rows]

    async def count(self, kind: str) -> int:
        row = self._connection.execute(
            "SELECT COUNT(*) FROM resources WHERE kind = ?", (kind,)
        ).fetchone()
        return int(row[0])


class SqliteStore:
    """A store in one SQLite file (WAL, synchronous=NORMAL)."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = 10_000,
        changes_kept: int = CHANGES_KEPT,
    ) -> None:
        self.path = Path(path)
        # sqlite:///abs/path for an absolute path, sqlite:rel/path otherwise:
        # store_from_url(store.url) opens the same file.
        self.url = f"sqlite://{self.path}" if self.path.is_absolute() else f"sqlite:{self.path}"
        self._busy_timeout_ms = busy_timeout_ms
        self._connection: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._changes_kept = changes_kept
        self.change_signal = ChangeSignal()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as error:
            raise Unavailable(f"cannot open SQLite store {self.path}: {error}") from error
        try:
            self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            row = connection.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
            current = row[0] or 0
            newest = MIGRATIONS[-1][0]
            if current > newest:
                raise Unavailable(
                    f"store {self.path} has schema version {current}, newer than this "
                    f"Stigmer understands ({newest}); upgrade Stigmer"
                )
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO schema_migrations VALUES (?, datetime('now'))", (version,)
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._connection is not None:
            async with self._lock:
                self._connection.close()
                self._connection = None

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[SqliteTransaction]:
        # A task started inside a transaction inherits the variable; only a
        # transaction still open is a nesting (and would deadlock on the lock).
        outer = _current_transaction.get()
        if outer is not None and outer.is_open and outer.task is asyncio.current_task():
            raise Internal("nested store transaction; pass the open transaction down instead")
        async with self._lock:
            connection = self._connection
            if connection is None:
                raise Unavailable("the store is closed")
            try:
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.OperationalError as error:
                raise Unavailable(f"store busy: {error}") from error
            transaction = SqliteTransaction(connection, changes_kept=self._changes_kept)
            token = _current_transaction.set(transaction)
            try:
                yield transaction
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            else:
                if transaction.is_discarded:
                    connection.execute("ROLLBACK")
                else:
                    if transaction.has_written:
                        crash_point("store/before-commit")
                    connection.execute("COMMIT")
                    if transaction.has_changes:
                        self.change_signal.notify()
                    if transaction.has_written:
                        crash_point("store/after-commit")
            finally:
                transaction.is_open = False
                _current_transaction.reset(token)
