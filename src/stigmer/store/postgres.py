"""The PostgreSQL backend: the store for more than one server process or machine.

psycopg 3 in async mode over a connection pool, so transactions of different
tasks (and of different servers) really run at the same time. Nothing
serializes writers globally; what keeps the data right is the database:

- Uniqueness is the unique index on (kind, org, slug). Inserts use
  `ON CONFLICT DO NOTHING`, which waits for a concurrent insert of the same
  key to commit or roll back, so get-or-create is `INSERT ... RETURNING`
  and, when nothing came back, a `SELECT` of the row that won.
- An update is a compare-and-swap on `version`: `Conflict` when it moved.
- In a write transaction `get` and `get_by_slug` lock the row they return
  (`FOR UPDATE`) until the transaction ends. A read-modify-write of one
  resource by two transactions then runs one after the other, as it does on
  SQLite, instead of the second failing its compare-and-swap: the domain
  reads, changes and writes back inside one transaction and relies on that.
  Unrelated rows do not wait for each other.
- Write transactions run at READ COMMITTED, set explicitly (not inherited
  from the database's default): every statement sees what committed before
  it, which the SELECT after a conflicting insert needs. Read transactions
  run at REPEATABLE READ, READ ONLY: one consistent snapshot for every
  statement, like a SQLite read transaction, and a write in them fails
  loudly instead of committing by accident.

PostgreSQL aborts a whole transaction when one statement fails. No statement
here fails on a duplicate in normal use (ON CONFLICT everywhere), and the one
that can (an update that renames a slug onto a taken one) runs under a
savepoint, so an `AlreadyExists` never poisons the caller's transaction.
Should a statement fail anyway, later statements and the commit raise
`Internal` naming that first error rather than losing writes silently
(PostgreSQL would turn the COMMIT into a ROLLBACK).

Every psycopg error is translated in one place, `_translate`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, LiteralString
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from stigmer.errors import (
    AlreadyExists,
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    StigmerError,
    Unavailable,
)
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
from stigmer.store.postgres_access_tokens import PostgresAccessTokens
from stigmer.store.postgres_schema import MIGRATIONS

Connection = psycopg.AsyncConnection[TupleRow]

_COLUMNS = (
    "kind, id, org, slug, version, data, owner_id, labels, "
    "agent_id, agent_instance_id, session_id, phase"
)
_FILTER_COLUMNS = ("org", "owner_id", "agent_id", "agent_instance_id", "session_id", "phase")


def _label_clause(requirement: Requirement) -> tuple[LiteralString, list[Any]]:
    """The WHERE clause of one label requirement over the jsonb labels column.

    Equality is containment (`@>`), which the GIN index on labels serves;
    `->>` of a missing key is NULL, hence the COALESCE for "absent or none of".
    """
    key = requirement.key
    values = list(requirement.values)
    match requirement.operator:
        case Operator.EQUALS:
            return "labels @> %s", [Jsonb({key: values[0]})]
        case Operator.NOT_EQUALS:
            return "NOT labels @> %s", [Jsonb({key: values[0]})]
        case Operator.IN:
            return "labels ->> %s::text = ANY(%s::text[])", [key, values]
        case Operator.NOT_IN:
            return "NOT COALESCE(labels ->> %s::text = ANY(%s::text[]), FALSE)", [key, values]
        case Operator.EXISTS:
            return "labels ? %s::text", [key]
        case Operator.DOES_NOT_EXIST:
            return "NOT labels ? %s::text", [key]


_SET_COLUMNS = (
    "org = %s, slug = %s, version = %s, data = %s, owner_id = %s, labels = %s, "
    "agent_id = %s, agent_instance_id = %s, session_id = %s, phase = %s"
)
# pg_advisory_xact_lock key taken while migrating: servers starting at the
# same time migrate one after the other (advisory locks are per database).
_MIGRATION_LOCK_KEY = 0x5354_4947_4D45_52  # "STIGMER"
# pg_advisory_xact_lock key taken just before a transaction writes its change
# rows, held until it commits (see PostgresTransaction._log_changes).
_CHANGE_LOG_LOCK_KEY = 0x5354_4947_4348_47  # "STIGCHG"
# How often an insert whose conflicting row vanished (deleted by a
# concurrent transaction between our INSERT and SELECT) is tried again.
_INSERT_ATTEMPTS = 3
_current_transaction: contextvars.ContextVar[PostgresTransaction | None] = contextvars.ContextVar(
    "stigmer_postgres_transaction", default=None
)


# -- errors: the one translation from psycopg to Stigmer ----------------------------------


def _busy(error: psycopg.Error, where: str) -> StigmerError:
    return Unavailable(f"store busy ({where}): {_first_line(error)}; retry")


def _unreachable(error: psycopg.Error, where: str) -> StigmerError:
    return Unavailable(f"cannot reach the PostgreSQL store at {where}: {_first_line(error)}")


_ERROR_TABLE: tuple[
    tuple[type[psycopg.Error], Callable[[psycopg.Error, str], StigmerError]], ...
] = (
    (
        pg_errors.UniqueViolation,
        # Callers that can name the existing row catch this and say which.
        lambda error, where: AlreadyExists("", "", "", message=f"already exists: {error}"),
    ),
    (pg_errors.DeadlockDetected, _busy),
    (pg_errors.SerializationFailure, _busy),
    (pg_errors.LockNotAvailable, _busy),  # lock_timeout: another writer held the row
    (pg_errors.QueryCanceled, _busy),
    (
        PoolTimeout,
        lambda error, where: Unavailable(
            f"store busy ({where}): no database connection became free in time; retry"
        ),
    ),
    (
        pg_errors.InFailedSqlTransaction,
        lambda error, where: Internal(
            "the store transaction was aborted by an earlier failed statement; roll it back"
        ),
    ),
    (
        pg_errors.ReadOnlySqlTransaction,
        lambda error, where: Internal(
            "a write in a read-only store transaction; open it with transaction(write=True)"
        ),
    ),
    (psycopg.OperationalError, _unreachable),  # connection refused, lost, admin shutdown
    (psycopg.InterfaceError, _unreachable),  # the connection was closed under us
    (psycopg.Error, lambda error, where: Internal(f"PostgreSQL store at {where}: {error}")),
)


def _translate(error: psycopg.Error, where: str) -> StigmerError:
    """The Stigmer error for a psycopg error: the first row of _ERROR_TABLE that matches."""
    for error_class, make in _ERROR_TABLE:
        if isinstance(error, error_class):
            return make(error, where)
    raise AssertionError("psycopg.Error is the table's last row")  # pragma: no cover


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- URLs ---------------------------------------------------------------------------------


def _redacted(url: str) -> str:
    """The URL without its password (in the user info or as a query parameter).

    The password stays out of logs and `store.url`; store_from_url(store.url)
    still reaches the same database, with the password from PGPASSWORD or
    ~/.pgpass as libpq looks for it.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    user_info, at, host = netloc.rpartition("@")
    if at:
        netloc = f"{user_info.partition(':')[0]}@{host}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        query = urlencode([(name, value) for name, value in pairs if name != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _where(parameters: dict[str, Any]) -> str:
    """host:port/database, for error messages (libpq's defaults where the URL is silent)."""
    host = parameters.get("host") or "localhost"
    if ":" in host and not host.startswith("/"):
        host = f"[{host}]"
    port = parameters.get("port") or "5432"
    return f"{host}:{port}/{parameters.get('dbname') or parameters.get('user') or '(default)'}"


# -- rows ---------------------------------------------------------------------------------


def _to_record(row: Sequence[Any]) -> Record:
    return Record(
        kind=row[0],
        id=row[1],
        org=row[2],
        slug=row[3],
        version=row[4],
        data=bytes(row[5]),
        owner_id=row[6],
        labels=row[7],
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
        Jsonb(dict(record.labels)),
        record.agent_id,
        record.agent_instance_id,
        record.session_id,
        record.phase,
    )


def _to_change_row(change_type: str, record: Record) -> tuple[Any, ...]:
    """A change row for unnest(): labels as JSON text (psycopg has no jsonb[] adapter)."""
    row = _to_row(record)
    return (change_type, *row[:7], json.dumps(dict(record.labels)), *row[8:])


def _limit(limit: int) -> int | None:
    """A LIMIT parameter: negative means no limit, as in SQLite (PostgreSQL's LIMIT NULL)."""
    return limit if limit >= 0 else None


# -- transactions -------------------------------------------------------------------------


class PostgresTransaction(PostgresAccessTokens):
    """One transaction on one pooled connection: explicit BEGIN, then COMMIT or ROLLBACK
    (the connections are in autocommit mode, so psycopg opens no transaction of its own)."""

    def __init__(
        self,
        connection: Connection,
        *,
        write: bool,
        where: str,
        store: PostgresStore,
        changes_kept: int,
    ) -> None:
        self._connection = connection
        self._changes_kept = changes_kept
        # The changes of this transaction's writes, written at commit.
        self._changes: list[tuple[str, Record]] = []
        self._where = where
        self.is_write = write
        self.is_discarded = False
        self.is_open = True
        # Whether a write statement ran: only those transactions pass the
        # store/before-commit and store/after-commit crash points, as on SQLite.
        self.has_written = False
        # The task that opened it: only that task nesting a transaction is a
        # bug. Tasks it starts wait for it to end (see PostgresStore.transaction).
        self.task = asyncio.current_task()
        self.store = store
        self.ended = asyncio.Event()
        # Rows read in a write transaction stay locked until it ends (see the module doc).
        self._lock = " FOR UPDATE" if write else ""
        # The statement error that aborted the transaction, if one did.
        self._failure: StigmerError | None = None

    def discard(self) -> None:
        self.is_discarded = True

    # -- statements: every one goes through _execute --------------------------

    async def _execute(
        self,
        sql: LiteralString,
        parameters: Sequence[Any] = (),
        *,
        savepoint: bool = False,
    ) -> psycopg.AsyncCursor[TupleRow]:
        """Runs one statement; psycopg errors come out translated.

        With `savepoint`, a failing statement is undone alone and the
        transaction stays usable (costs two extra round trips).
        """
        if self._failure is not None:
            raise Internal(
                "the store transaction was aborted by an earlier failed statement "
                f"({self._failure}); roll it back"
            )
        try:
            if not savepoint:
                return await self._connection.execute(sql, parameters)
            await self._connection.execute("SAVEPOINT stigmer_statement")
            try:
                cursor = await self._connection.execute(sql, parameters)
            except psycopg.Error:
                await self._connection.execute("ROLLBACK TO SAVEPOINT stigmer_statement")
                await self._connection.execute("RELEASE SAVEPOINT stigmer_statement")
                raise
            await self._connection.execute("RELEASE SAVEPOINT stigmer_statement")
            return cursor
        except psycopg.Error as error:
            translated = _translate(error, self._where)
            if self._connection.info.transaction_status == TransactionStatus.INERROR:
                self._failure = translated
            raise translated from error

    async def _record(self, sql: LiteralString, parameters: Sequence[Any]) -> Record | None:
        row = await (await self._execute(sql, parameters)).fetchone()
        return _to_record(row) if row is not None else None

    async def _begin(self) -> None:
        await self._execute(
            "BEGIN ISOLATION LEVEL READ COMMITTED"
            if self.is_write
            else "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        )

    async def _finish(self) -> None:
        """Commits, or rolls back when discarded.

        Raises:
            Internal: a statement failed and aborted the transaction; nothing
                was committed (PostgreSQL would have rolled back quietly).
        """
        if self._failure is not None:
            failure = self._failure
            self._failure = None
            await self._execute("ROLLBACK")
            raise Internal(
                f"the store transaction was aborted by a failed statement ({failure}); "
                "nothing was committed"
            )
        if self.is_discarded:
            await self._execute("ROLLBACK")
            return
        if self._changes:
            try:
                await self._log_changes()
            except BaseException:
                await self._rollback_quietly()
                raise
        if self.has_written:
            crash_point("store/before-commit")
        await self._execute("COMMIT")
        if self.has_written:
            crash_point("store/after-commit")

    async def _rollback_quietly(self) -> None:
        """Rolls back on the way out of an exception; a dead connection is the pool's to drop."""
        with suppress(psycopg.Error):
            await self._connection.execute("ROLLBACK")

    # -- resources ------------------------------------------------------------

    async def get(self, kind: str, resource_id: str) -> Record | None:
        return await self._record(
            f"SELECT {_COLUMNS} FROM resources WHERE id = %s AND kind = %s{self._lock}",
            (resource_id, kind),
        )

    async def get_by_slug(self, kind: str, org: str, slug: str) -> Record | None:
        return await self._record(
            f"SELECT {_COLUMNS} FROM resources WHERE kind = %s AND org = %s AND slug = %s"
            f"{self._lock}",
            (kind, org, slug),
        )

    async def insert(self, record: Record) -> None:
        stored, inserted = await self.insert_if_absent(record)
        if not inserted:
            raise AlreadyExists(record.kind, record.slug, stored.id, org=record.org)

    async def insert_if_absent(self, record: Record) -> tuple[Record, bool]:
        self.has_written = True
        for _ in range(_INSERT_ATTEMPTS):
            # No conflict target: a taken id is skipped as well instead of
            # failing (and aborting the transaction); the lookups below tell
            # the two apart.
            cursor = await self._execute(
                f"INSERT INTO resources ({_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING id",
                _to_row(record),
            )
            if await cursor.fetchone() is not None:
                self._changes.append((ADDED, record))
                return record, True
            existing = await self.get_by_slug(record.kind, record.org, record.slug)
            if existing is not None:
                return existing, False
            taken = await self._record(
                f"SELECT {_COLUMNS} FROM resources WHERE id = %s", (record.id,)
            )
            if taken is not None:
                raise AlreadyExists(taken.kind, taken.slug, taken.id, org=taken.org)
            # The row we collided with was deleted in between: try again.
        raise Internal(
            f"insert of {record.kind} {record.slug!r} kept colliding with rows that vanished"
        )

    async def update(
        self, record: Record, expected_version: int, *, is_change_logged: bool = True
    ) -> None:
        self.has_written = True
        row = _to_row(record)
        await self._update(record, expected_version, row)
        if is_change_logged:
            self._changes.append((MODIFIED, record))

    async def _update(self, record: Record, expected_version: int, row: tuple[Any, ...]) -> None:
        # The usual update keeps org and slug, so it cannot collide on the
        # unique index and needs no savepoint: one round trip.
        cursor = await self._execute(
            f"UPDATE resources SET {_SET_COLUMNS} "
            "WHERE id = %s AND kind = %s AND version = %s AND org = %s AND slug = %s",
            (*row[2:], record.id, record.kind, expected_version, record.org, record.slug),
        )
        if cursor.rowcount == 1:
            return
        current = await self.get(record.kind, record.id)
        if current is None:
            raise NotFound(record.kind, record.id)
        if current.version != expected_version:
            raise Conflict(record.kind, record.id, expected_version, current.version)
        # A rename: the new (org, slug) may be taken.
        try:
            cursor = await self._execute(
                f"UPDATE resources SET {_SET_COLUMNS} WHERE id = %s AND kind = %s AND version = %s",
                (*row[2:], record.id, record.kind, expected_version),
                savepoint=True,
            )
        except AlreadyExists:
            holder = await self._record(
                f"SELECT {_COLUMNS} FROM resources WHERE kind = %s AND org = %s AND slug = %s",
                (record.kind, record.org, record.slug),
            )
            raise AlreadyExists(
                record.kind, record.slug, holder.id if holder else "", org=record.org
            ) from None
        if cursor.rowcount != 1:
            # Only a read transaction (no row lock) can get here, and it cannot write.
            raise Internal(f"update of {record.kind} {record.id} matched no row")

    async def delete(self, kind: str, resource_id: str) -> bool:
        self.has_written = True
        # One round trip: the record (returned for the change log), its
        # event log and its lease.
        cursor = await self._execute(
            f"WITH gone AS (DELETE FROM resources WHERE id = %s AND kind = %s "
            f"RETURNING {_COLUMNS}), "
            "events AS (DELETE FROM resource_events WHERE resource_id IN (SELECT id FROM gone)), "
            "lease AS (DELETE FROM leases WHERE resource_id IN (SELECT id FROM gone)) "
            f"SELECT {_COLUMNS} FROM gone",
            (resource_id, kind),
        )
        row = await cursor.fetchone()
        if row is None:
            return False
        self._changes.append((DELETED, _to_record(row)))
        return True

    # -- the change log -------------------------------------------------------

    async def _log_changes(self) -> None:
        """Writes the transaction's change rows, just before COMMIT.

        An identity number is handed out at insert, but transactions commit
        in any order: were the rows written as the writes happen, a watcher
        that has read up to 12 could see 12 commit before 11 and, resuming
        after 12, never see 11. So the rows are written last, under a
        transaction-scoped advisory lock held until COMMIT: change-writing
        transactions take their numbers and commit one after the other, and
        numbers become visible in order. The lock is taken after every other
        statement of the transaction, so no one waits for it while holding a
        row another holder needs (no deadlock); holders only insert and commit.
        """
        changes, self._changes = self._changes, []
        await self._execute("SELECT pg_advisory_xact_lock(%s)", (_CHANGE_LOG_LOCK_KEY,))
        # One statement for the batch: a column array each, in _COLUMNS order.
        rows = [_to_change_row(change_type, record) for change_type, record in changes]
        columns = zip(*rows, strict=True)
        cursor = await self._execute(
            f"INSERT INTO resource_changes (change_type, {_COLUMNS}) "
            f"SELECT change_type, {_COLUMNS.replace('labels', 'labels::jsonb')} "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::bigint[], %s::bytea[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], %s::text[]) WITH ORDINALITY AS t(change_type, "
            f"{_COLUMNS}, n) ORDER BY n RETURNING sequence",
            [list(column) for column in columns],
        )
        sequences = [int(row[0]) for row in await cursor.fetchall()]
        newest = max(sequences)
        if newest // COMPACTION_EVERY > (newest - len(sequences)) // COMPACTION_EVERY:
            await self._compact(newest - self._changes_kept)

    async def _horizon(self) -> int:
        cursor = await self._execute(
            "SELECT compacted_through FROM resource_change_horizon WHERE id = 1"
        )
        row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0

    async def _compact(self, through: int) -> int:
        horizon = await self._horizon()
        if through <= horizon:
            return horizon
        await self._execute("DELETE FROM resource_changes WHERE sequence <= %s", (through,))
        await self._execute(
            "UPDATE resource_change_horizon SET compacted_through = %s WHERE id = 1", (through,)
        )
        return through

    async def list_changes(
        self, after: int, kinds: Sequence[str] = (), limit: int = 1000
    ) -> builtins.list[Change]:
        horizon = await self._horizon()
        if after < horizon:
            raise too_old(after, horizon)
        kind_clause = " AND kind = ANY(%s)" if kinds else ""
        parameters: list[Any] = [after]
        if kinds:
            parameters.append(list(kinds))
        parameters.append(_limit(limit))
        cursor = await self._execute(
            f"SELECT sequence, change_type, {_COLUMNS} FROM resource_changes "
            f"WHERE sequence > %s{kind_clause} ORDER BY sequence LIMIT %s",
            parameters,
        )
        return [Change(int(row[0]), row[1], _to_record(row[2:])) for row in await cursor.fetchall()]

    async def newest_change_sequence(self) -> int:
        cursor = await self._execute(
            "SELECT GREATEST(COALESCE(MAX(sequence), 0), "
            "(SELECT compacted_through FROM resource_change_horizon WHERE id = 1)) "
            "FROM resource_changes"
        )
        row = await cursor.fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    async def compact_changes(self, keep: int) -> int:
        self.has_written = True
        # Under the change-log lock, like every other move of the horizon.
        await self._execute("SELECT pg_advisory_xact_lock(%s)", (_CHANGE_LOG_LOCK_KEY,))
        return await self._compact(await self.newest_change_sequence() - max(keep, 0))

    async def list(self, query: ListQuery) -> list[Record]:
        clauses = ["kind = %s"]
        parameters: list[Any] = [query.kind]
        for column in _FILTER_COLUMNS:
            value = getattr(query, column)
            if value is not None:
                clauses.append(f"{column} = %s")
                parameters.append(value)
        for requirement in query.label_requirements():
            clause, values = _label_clause(requirement)
            clauses.append(clause)
            parameters += values
        if query.after_id:
            clauses.append("id > %s")
            parameters.append(query.after_id)
        parameters.append(_limit(query.limit))
        where = " AND ".join(clauses)
        cursor = await self._execute(
            f"SELECT {_COLUMNS} FROM resources WHERE {where} ORDER BY id LIMIT %s",
            parameters,
        )
        return [_to_record(row) for row in await cursor.fetchall()]

    async def count(self, kind: str) -> int:
        cursor = await self._execute("SELECT COUNT(*) FROM resources WHERE kind = %s", (kind,))
        row = await cursor.fetchone()
        return int(row[0]) if row is not None else 0

    # -- event log ------------------------------------------------------------

    async def append_events(self, resource_id: str, events: Sequence[tuple[int, bytes]]) -> None:
        self.has_written = True
        if not events:
            return
        # One statement for the batch. ON CONFLICT keeps a repeated sequence
        # from aborting the transaction; the row count tells it happened.
        # As on SQLite, the sequences of the batch that were new stay logged.
        cursor = await self._execute(
            "INSERT INTO resource_events (resource_id, sequence, data) "
            "SELECT %s, sequence, data FROM unnest(%s::bigint[], %s::bytea[]) AS t(sequence, data) "
            "ON CONFLICT DO NOTHING",
            (resource_id, [sequence for sequence, _ in events], [data for _, data in events]),
        )
        if cursor.rowcount != len(events):
            raise Internal(
                f"event sequence of {resource_id} already logged: "
                f"{len(events) - cursor.rowcount} of {[s for s, _ in events]}"
            )

    async def list_events(
        self, resource_id: str, after_sequence: int, limit: int = 1000
    ) -> builtins.list[tuple[int, bytes]]:
        cursor = await self._execute(
            "SELECT sequence, data FROM resource_events WHERE resource_id = %s AND sequence > %s "
            "ORDER BY sequence LIMIT %s",
            (resource_id, after_sequence, _limit(limit)),
        )
        return [(int(sequence), bytes(data)) for sequence, data in await cursor.fetchall()]

    # -- leases ---------------------------------------------------------------

    async def put_lease(self, lease: Lease) -> None:
        self.has_written = True
        await self._execute(
            "INSERT INTO leases (resource_id, owner, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (resource_id) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at",
            (lease.resource_id, lease.owner, lease.expires_at),
        )

    async def get_lease(self, resource_id: str) -> Lease | None:
        cursor = await self._execute(
            "SELECT resource_id, owner, expires_at FROM leases WHERE resource_id = %s",
            (resource_id,),
        )
        row = await cursor.fetchone()
        return Lease(row[0], row[1], float(row[2])) if row is not None else None

    async def delete_lease(self, resource_id: str) -> None:
        self.has_written = True
        await self._execute("DELETE FROM leases WHERE resource_id = %s", (resource_id,))

    async def list_expired_leases(self, now: float, limit: int = 100) -> builtins.list[Lease]:
        cursor = await self._execute(
            "SELECT resource_id, owner, expires_at FROM leases WHERE expires_at < %s "
            "ORDER BY expires_at LIMIT %s",
            (now, _limit(limit)),
        )
        return [Lease(row[0], row[1], float(row[2])) for row in await cursor.fetchall()]


# -- the store ----------------------------------------------------------------------------


class PostgresStore:
    """A store in a PostgreSQL database, shared safely by any number of servers."""

    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        wait_timeout: float = 10.0,
        lock_timeout: float = 10.0,
        changes_kept: int = CHANGES_KEPT,
    ) -> None:
        """
        Args:
            url: `postgres://user[:password]@host[:port]/database[?libpq-params]`
                (or `postgresql://`). The password is used to connect and
                left out of `self.url`.
            min_connections, max_connections: the pool's size. A transaction
                holds one connection from BEGIN to COMMIT.
            connect_timeout: seconds to establish a connection.
            wait_timeout: seconds a transaction waits for a free connection.
            lock_timeout: seconds a statement waits for a row another
                transaction holds (SQLite's busy timeout, in effect).
            changes_kept: how many of the newest changes the change log keeps.

        Raises:
            InvalidArgument: the URL is not a PostgreSQL URL libpq can parse.
        """
        if not url.startswith(("postgres://", "postgresql://")):
            raise InvalidArgument.for_field("store", f"not a PostgreSQL URL: {url!r}")
        try:
            parameters = conninfo_to_dict(url)
        except psycopg.Error as error:
            raise InvalidArgument.for_field(
                "store", f"bad PostgreSQL URL {_redacted(url)!r}: {error}"
            ) from None
        self.url = _redacted(url)
        self._conninfo = url
        self._where = _where(parameters)
        self._connect_options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in parameters:
            self._connect_options["connect_timeout"] = max(1, round(connect_timeout))
        if "application_name" not in parameters:
            self._connect_options["application_name"] = "stigmer"
        self._min_connections = min_connections
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._wait_timeout = wait_timeout
        self._lock_timeout_ms = round(lock_timeout * 1000)
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._is_closing = False
        self._changes_kept = changes_kept
        self.change_signal = ChangeSignal()
        # Open transactions; close() waits until none is left.
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def open(self) -> None:
        """Connects, migrates the schema (one server at a time), then opens the pool.

        Raises:
            Unavailable: the database cannot be reached, or its schema is
                newer than this Stigmer understands (the store stays closed).
        """
        if self._pool is not None:
            return
        try:
            connection = await psycopg.AsyncConnection.connect(
                self._conninfo, **self._connect_options
            )
        except psycopg.Error as error:
            raise _translate(error, self._where) from error
        try:
            await self._migrate(connection)
        finally:
            await connection.close()
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self._conninfo,
            kwargs=self._connect_options,
            min_size=self._min_connections,
            max_size=self._max_connections,
            open=False,
            configure=self._configure,
            timeout=self._wait_timeout,
            name="stigmer-store",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout)
        except BaseException as error:
            # Also when cancelled: a pool left open keeps retrying its
            # connections in tasks that swallow cancellation, and the event
            # loop could never shut down.
            await pool.close()
            if isinstance(error, psycopg.Error):
                raise _translate(error, self._where) from error
            raise
        self._pool = pool
        self._is_closing = False

    async def _configure(self, connection: Connection) -> None:
        """Session settings of every new pooled connection."""
        await connection.execute(f"SET lock_timeout = {self._lock_timeout_ms:d}".encode())

    async def _migrate(self, connection: Connection) -> None:
        try:
            await connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            try:
                # Held until COMMIT: a second server waits here, then finds
                # the schema current and applies nothing.
                await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
                await connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                cursor = await connection.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
                )
                row = await cursor.fetchone()
                current = int(row[0]) if row is not None else 0
                newest = MIGRATIONS[-1][0]
                if current > newest:
                    raise Unavailable(
                        f"store {self.url} has schema version {current}, newer than this "
                        f"Stigmer understands ({newest}); upgrade Stigmer"
                    )
                for version, statements in MIGRATIONS:
                    if version <= current:
                        continue
                    for statement in statements:
                        await connection.execute(statement)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version) VALUES (%s)", (version,)
                    )
                await connection.execute("COMMIT")
            except BaseException:
                with suppress(psycopg.Error):
                    await connection.execute("ROLLBACK")
                raise
        except psycopg.Error as error:
            raise _translate(error, self._where) from error

    async def close(self) -> None:
        """Refuses new transactions, waits for the open ones to end, closes the pool."""
        pool = self._pool
        if pool is None:
            return
        self._is_closing = True
        await self._idle.wait()
        if self._pool is pool:  # not closed meanwhile by a concurrent close()
            self._pool = None
            await pool.close()

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[PostgresTransaction]:
        # A task started inside a transaction inherits the variable; only a
        # transaction still open in this very task is a nesting.
        outer = _current_transaction.get()
        if outer is not None and outer.is_open:
            if outer.task is asyncio.current_task():
                raise Internal("nested store transaction; pass the open transaction down instead")
            if outer.store is self:
                # A task started inside an open transaction begins its own
                # once that one has ended, as on SQLite (where it waits for
                # the lock): it sees what its parent committed, never a race
                # with it. Awaiting such a task inside the transaction
                # deadlocks on both backends; pass the transaction down.
                await outer.ended.wait()
        pool = self._pool
        if pool is None or self._is_closing:
            raise Unavailable("the store is closed")
        self._active += 1
        self._idle.clear()
        try:
            connection, transaction = await self._begin(pool, write=write)
            token = _current_transaction.set(transaction)
            try:
                yield transaction
            except BaseException:
                await transaction._rollback_quietly()
                raise
            else:
                has_changes = bool(transaction._changes) and not transaction.is_discarded
                await transaction._finish()
                if has_changes:
                    self.change_signal.notify()
            finally:
                transaction.is_open = False
                transaction.ended.set()
                _current_transaction.reset(token)
                await pool.putconn(connection)
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def _begin(
        self, pool: AsyncConnectionPool[Connection], *, write: bool
    ) -> tuple[Connection, PostgresTransaction]:
        """A pooled connection with a transaction begun on it.

        A connection the server dropped while it sat in the pool (a restart,
        an idle timeout) fails its BEGIN; nothing has happened yet, so the
        next connection is tried (the pool replaces the dead one).
        """
        for attempt in range(1, self._max_connections + 2):
            try:
                connection = await pool.getconn()
            except psycopg.Error as error:
                raise _translate(error, self._where) from error
            transaction = PostgresTransaction(
                connection,
                write=write,
                where=self._where,
                store=self,
                changes_kept=self._changes_kept,
            )
            try:
                await transaction._begin()
            except BaseException as error:
                await pool.putconn(connection)
                if (
                    isinstance(error, Unavailable)
                    and connection.closed
                    and attempt <= self._max_connections
                ):
                    continue
                raise
            return connection, transaction
        raise AssertionError("unreachable")  # pragma: no cover
