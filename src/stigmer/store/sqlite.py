"""The SQLite backend: the default store, a single file in WAL mode.

The stdlib driver is synchronous. SQLite answers an indexed statement in
microseconds, so statements run directly on the event loop; what must not
happen is two transactions interleaving on the one connection, so an
asyncio lock serializes transactions. Write transactions start with
BEGIN IMMEDIATE: a deferred BEGIN that later writes fails at once with
"database is locked" when another process writes (the busy timeout does not
cover the upgrade).

Every sqlite3 error a statement raises is translated in one place,
`_translate`, so a failed statement inside a transaction comes out as the
Stigmer error it means (a busy database is `Unavailable`, a taken unique key
is turned into `AlreadyExists` by the write that knows which row holds it).
Unlike PostgreSQL, SQLite undoes only the failed statement; the transaction
goes on.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from stigmer.errors import AlreadyExists, Conflict, Internal, NotFound, StigmerError, Unavailable
from stigmer.faults import crash_point
from stigmer.resources.selectors import Operator, Requirement
from stigmer.store.base import LOG_PAGE_SIZE, PAGE_SIZE, Change, Lease, ListQuery, Record
from stigmer.store.changes import (
    ADDED,
    CHANGES_KEPT,
    COMPACTION_EVERY,
    DELETED,
    MODIFIED,
    ChangeSignal,
    too_old,
)
from stigmer.store.rows import (
    COLUMN_LIST,
    COLUMNS,
    FILTER_COLUMNS,
    UPDATED_COLUMNS,
    record_from_row,
    row_from_record,
    updated_values,
)
from stigmer.store.sqlite_schema import MIGRATIONS

_MARKS = ", ".join("?" * len(COLUMNS))
_SET_COLUMNS = ", ".join(f"{column} = ?" for column in UPDATED_COLUMNS)


# -- errors: the one translation from sqlite3 to Stigmer ----------------------------------


class DuplicateKey(Internal):
    """A statement hit a unique index: (kind, org, slug), an id, an event's sequence.

    The write that ran it knows which row it collided with and raises the
    error that means (AlreadyExists, or Internal for an event sequence); one
    that escapes is a statement that should not have collided: a bug.
    """


def _busy(error: sqlite3.Error, path: Path) -> StigmerError:
    return Unavailable(f"store busy ({path}): {error}; retry")


def _unusable(error: sqlite3.Error, path: Path) -> StigmerError:
    return Unavailable(f"cannot use the SQLite store {path}: {error}")


def _duplicate(error: sqlite3.Error, path: Path) -> StigmerError:
    return DuplicateKey(f"SQLite store {path}: {error}")


# Rows are matched on the error's result code, primary (the low byte) or
# extended; the first row that matches wins, the last matches every error.
_ERROR_TABLE: tuple[tuple[frozenset[int], Callable[[sqlite3.Error, Path], StigmerError]], ...] = (
    (
        frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}),
        _duplicate,
    ),
    # The busy timeout ran out: another process held the write lock.
    (frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}), _busy),
    # The file, its disk or its permissions: nothing a retry of the request fixes.
    (
        frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR}),
        _unusable,
    ),
    (frozenset(), lambda error, path: Internal(f"SQLite store {path}: {error}")),
)


def _translate(error: sqlite3.Error, path: Path) -> StigmerError:
    """The Stigmer error for a sqlite3 error: the first row of _ERROR_TABLE that matches."""
    code: int | None = getattr(error, "sqlite_errorcode", None)
    for codes, make in _ERROR_TABLE:
        if not codes or (code is not None and {code, code & 0xFF} & codes):
            return make(error, path)
    raise AssertionError("the table's last row matches every error")  # pragma: no cover


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Runs the block with sqlite3 errors translated (see _translate)."""
    try:
        yield
    except sqlite3.Error as error:
        raise _translate(error, path) from error


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


_current_transaction: contextvars.ContextVar[SqliteTransaction | None] = contextvars.ContextVar(
    "stigmer_sqlite_transaction", default=None
)


# -- transactions -------------------------------------------------------------------------


class SqliteTransaction:
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
        with _translated(self._path):
            return self._connection.execute(sql, parameters)

    def _fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        # Inside the translation: SQLite steps a statement, and may fail, as
        # its rows are read. A RETURNING statement is done only once all were.
        with _translated(self._path):
            return self._connection.execute(sql, parameters).fetchall()

    def _fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> Any | None:
        with _translated(self._path):
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
            with _translated(self._path):
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


# -- the store ----------------------------------------------------------------------------


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
            # Whatever fails before the schema is read (a missing directory,
            # a file that is not a database) means there is no store to use.
            raise Unavailable(f"cannot open SQLite store {self.path}: {error}") from error
        try:
            with _translated(self.path):
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
            _roll_back(connection)
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
            with _translated(self.path):
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            transaction = SqliteTransaction(
                connection, path=self.path, changes_kept=self._changes_kept
            )
            token = _current_transaction.set(transaction)
            try:
                yield transaction
            except BaseException:
                _roll_back(connection)
                raise
            else:
                if transaction.is_discarded:
                    _roll_back(connection)
                else:
                    if transaction.has_written:
                        crash_point("store/before-commit")
                    self._commit(connection)
                    if transaction.has_changes:
                        self.change_signal.notify()
                    if transaction.has_written:
                        crash_point("store/after-commit")
            finally:
                transaction.is_open = False
                _current_transaction.reset(token)

    def _commit(self, connection: sqlite3.Connection) -> None:
        """Commits; a COMMIT that fails is rolled back, so the connection
        is left outside any transaction for the next one to begin."""
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            _roll_back(connection)
            raise _translate(error, self.path) from error


def _roll_back(connection: sqlite3.Connection) -> None:
    # Some failures (a full disk, an I/O error) make SQLite roll the whole
    # transaction back by itself; a ROLLBACK then would fail and hide them.
    if connection.in_transaction:
        connection.execute("ROLLBACK")
