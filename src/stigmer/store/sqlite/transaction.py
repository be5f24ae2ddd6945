"""One SQLite store transaction on the store's one connection.

The store (store.py) serializes transactions and runs BEGIN, COMMIT and
ROLLBACK; a transaction runs the statements, each through `_execute`,
`_fetch_all` or `_fetch_one`, which translate sqlite3's errors (errors.py).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stigmer.errors import AlreadyExists, Conflict, Internal, NotFound
from stigmer.resources.selectors import Operator, Requirement
from stigmer.store.base import LOG_PAGE_SIZE, PAGE_SIZE, Change, Lease, ListQuery, Record
from stigmer.store.changes import ADDED, COMPACTION_EVERY, DELETED, MODIFIED, too_old
from stigmer.store.rows import (
    COLUMN_LIST,
    COLUMNS,
    FILTER_COLUMNS,
    UPDATED_COLUMNS,
    record_from_row,
    row_from_record,
    updated_values,
)
from stigmer.store.sqlite.access_tokens import SqliteAccessTokens
from stigmer.store.sqlite.artifacts import SqliteArtifacts
from stigmer.store.sqlite.errors import DuplicateKey, translated
from stigmer.store.sqlite.usage_records import SqliteUsageRecords

_MARKS = ", ".join("?" * len(COLUMNS))
_SET_COLUMNS = ", ".join(f"{column} = ?" for column in UPDATED_COLUMNS)

# -- rows and queries ---------------------------------------------------------------------


def _to_record(row: Sequence[Any]) -> Record:
    return record_from_row(row, json.loads)


def _to_row(record: Record) -> tuple[Any, ...]:
    # sort_keys: equal labels are equal text, whatever order they were given in.
    return row_from_record(record, lambda labels: json.dumps(labels, sort_keys=True))


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


# -- transactions -------------------------------------------------------------------------


class SqliteTransaction(SqliteAccessTokens, SqliteArtifacts, SqliteUsageRecords):
    def __init__(self, connection: sqlite3.Connection, *, path: Path, changes_kept: int) -> None:
        self._connection = connection
        self._path = path
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

    # -- statements: every one goes through these three -----------------------

    def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Runs a statement whose rows (if any) are not read."""
        with translated(self._path):
            return self._connection.execute(sql, parameters)

    def _fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        # Inside the translation: SQLite steps a statement, and may fail, as
        # its rows are read. A RETURNING statement is done only once all were.
        with translated(self._path):
            return self._connection.execute(sql, parameters).fetchall()

    def _fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> Any | None:
        with translated(self._path):
            return self._connection.execute(sql, parameters).fetchone()

    def _record(self, sql: str, parameters: Sequence[Any]) -> Record | None:
        row = self._fetch_one(sql, parameters)
        return _to_record(row) if row is not None else None

    # -- resources ------------------------------------------------------------

    async def get(self, kind: str, resource_id: str) -> Record | None:
        return self._record(
            f"SELECT {COLUMN_LIST} FROM resources WHERE id = ? AND kind = ?", (resource_id, kind)
        )

    async def get_by_slug(self, kind: str, org: str, slug: str) -> Record | None:
        return self._record(
            f"SELECT {COLUMN_LIST} FROM resources WHERE kind = ? AND org = ? AND slug = ?",
            (kind, org, slug),
        )

    async def insert(self, record: Record) -> None:
        stored, inserted = await self.insert_if_absent(record)
        if not inserted:
            raise AlreadyExists(record.kind, record.slug, stored.id, org=record.org)

    async def insert_if_absent(self, record: Record) -> tuple[Record, bool]:
        self.has_written = True
        try:
            cursor = self._execute(
                f"INSERT INTO resources ({COLUMN_LIST}) VALUES ({_MARKS}) "
                "ON CONFLICT (kind, org, slug) DO NOTHING",
                _to_row(record),
            )
        except DuplicateKey as error:
            # Only the primary key is left to collide: the same id, reused.
            existing = self._record(
                f"SELECT {COLUMN_LIST} FROM resources WHERE id = ?", (record.id,)
            )
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
        try:
            cursor = self._execute(
                f"UPDATE resources SET {_SET_COLUMNS} WHERE id = ? AND kind = ? AND version = ?",
                (*updated_values(_to_row(record)), record.id, record.kind, expected_version),
            )
        except DuplicateKey:
            # A rename onto a (kind, org, slug) another record holds.
            holder = await self.get_by_slug(record.kind, record.org, record.slug)
            raise AlreadyExists(
                record.kind, record.slug, holder.id if holder else "", org=record.org
            ) from None
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
        rows = self._fetch_all(
            f"DELETE FROM resources WHERE id = ? AND kind = ? RETURNING {COLUMN_LIST}",
            (resource_id, kind),
        )
        if not rows:
            return False
        self._log_change(DELETED, _to_record(rows[0]))
        self._execute("DELETE FROM resource_events WHERE resource_id = ?", (resource_id,))
        self._execute("DELETE FROM leases WHERE resource_id = ?", (resource_id,))
        return True

    async def list(self, query: ListQuery) -> list[Record]:
        clauses = ["kind = ?"]
        parameters: list[Any] = [query.kind]
        for column in FILTER_COLUMNS:
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
        rows = self._fetch_all(
            f"SELECT {COLUMN_LIST} FROM resources WHERE {' AND '.join(clauses)} "
            "ORDER BY id LIMIT ?",
            parameters,
        )
        return [_to_record(row) for row in rows]

    async def count(self, kind: str) -> int:
        row = self._fetch_one("SELECT COUNT(*) FROM resources WHERE kind = ?", (kind,))
        return int(row[0]) if row is not None else 0

    # -- the change log -------------------------------------------------------

    def _log_change(self, change_type: str, record: Record) -> None:
        # SQLite runs one writer at a time, so numbers commit in order as they
        # are handed out; the row goes in right away.
        self.has_changes = True
        cursor = self._execute(
            f"INSERT INTO resource_changes (change_type, {COLUMN_LIST}) VALUES (?, {_MARKS})",
            (change_type, *_to_row(record)),
        )
        sequence = cursor.lastrowid
        if sequence is not None and sequence % COMPACTION_EVERY == 0:
            self._compact(sequence - self._changes_kept)

    def _horizon(self) -> int:
        row = self._fetch_one("SELECT compacted_through FROM resource_change_horizon WHERE id = 1")
        return int(row[0]) if row is not None else 0

    def _compact(self, through: int) -> int:
        horizon = self._horizon()
        if through <= horizon:
            return horizon
        self._execute("DELETE FROM resource_changes WHERE sequence <= ?", (through,))
        self._execute(
            "UPDATE resource_change_horizon SET compacted_through = ? WHERE id = 1", (through,)
        )
        return through

    async def list_changes(
        self, after: int, kinds: Sequence[str] = (), limit: int = LOG_PAGE_SIZE
    ) -> builtins.list[Change]:
        horizon = self._horizon()
        if after < horizon:
            raise too_old(after, horizon)
        clauses = ["sequence > ?"]
        parameters: list[Any] = [after]
        if kinds:
            clauses.append(f"kind IN ({', '.join('?' for _ in kinds)})")
            parameters += list(kinds)
        parameters.append(limit)
        rows = self._fetch_all(
            f"SELECT sequence, change_type, {COLUMN_LIST} FROM resource_changes "
            f"WHERE {' AND '.join(clauses)} ORDER BY sequence LIMIT ?",
            parameters,
        )
        return [Change(int(row[0]), row[1], _to_record(row[2:])) for row in rows]

    async def newest_change_sequence(self) -> int:
        row = self._fetch_one("SELECT MAX(sequence) FROM resource_changes")
        newest = int(row[0]) if row is not None and row[0] is not None else 0
        return max(newest, self._horizon())

    async def compact_changes(self, keep: int) -> int:
        self.has_written = True
        return self._compact(await self.newest_change_sequence() - max(keep, 0))

    # -- a resource's event log -----------------------------------------------

    async def append_events(self, resource_id: str, events: Sequence[tuple[int, bytes]]) -> None:
        self.has_written = True
        try:
            with translated(self._path):
                self._connection.executemany(
                    "INSERT INTO resource_events (resource_id, sequence, data) VALUES (?, ?, ?)",
                    [(resource_id, sequence, data) for sequence, data in events],
                )
        except DuplicateKey as error:
            raise Internal(f"event sequence of {resource_id} already logged: {error}") from error

    async def list_events(
        self, resource_id: str, after_sequence: int, limit: int = LOG_PAGE_SIZE
    ) -> builtins.list[tuple[int, bytes]]:
        rows = self._fetch_all(
            "SELECT sequence, data FROM resource_events WHERE resource_id = ? AND sequence > ? "
            "ORDER BY sequence LIMIT ?",
            (resource_id, after_sequence, limit),
        )
        return [(int(sequence), bytes(data)) for sequence, data in rows]

    # -- leases ---------------------------------------------------------------

    async def put_lease(self, lease: Lease) -> None:
        self.has_written = True
        self._execute(
            "INSERT INTO leases (resource_id, owner, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (resource_id) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at",
            (lease.resource_id, lease.owner, lease.expires_at),
        )

    async def get_lease(self, resource_id: str) -> Lease | None:
        row = self._fetch_one(
            "SELECT resource_id, owner, expires_at FROM leases WHERE resource_id = ?",
            (resource_id,),
        )
        return Lease(row[0], row[1], float(row[2])) if row is not None else None

    async def delete_lease(self, resource_id: str) -> None:
        self.has_written = True
        self._execute("DELETE FROM leases WHERE resource_id = ?", (resource_id,))

    async def list_expired_leases(self, now: float, limit: int = PAGE_SIZE) -> builtins.list[Lease]:
        rows = self._fetch_all(
            "SELECT resource_id, owner, expires_at FROM leases WHERE expires_at < ? "
            "ORDER BY expires_at LIMIT ?",
            (now, limit),
        )
        return [Lease(row[0], row[1], float(row[2])) for row in rows]
