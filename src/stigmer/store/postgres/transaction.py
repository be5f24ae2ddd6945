"""One PostgreSQL store transaction on one pooled connection.

What keeps concurrent transactions right (row locks, isolation levels, the
savepoint around a rename, an aborted transaction reported instead of
committed) is described in the package docstring (store/postgres/__init__.py);
this module is where it is done. Every statement goes through
`PostgresTransaction._execute`, which translates psycopg's errors
(store/postgres/errors.py).
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, LiteralString

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from stigmer.errors import AlreadyExists, Conflict, Internal, NotFound, StigmerError
from stigmer.faults import crash_point
from stigmer.resources.selectors import Operator, Requirement
from stigmer.store.base import LOG_PAGE_SIZE, PAGE_SIZE, Change, Lease, ListQuery, Record
from stigmer.store.changes import ADDED, COMPACTION_EVERY, DELETED, MODIFIED, too_old
from stigmer.store.postgres.access_tokens import PostgresAccessTokens
from stigmer.store.postgres.artifacts import PostgresArtifacts
from stigmer.store.postgres.errors import DuplicateKey, translate
from stigmer.store.postgres.usage_records import PostgresUsageRecords
from stigmer.store.rows import (
    COLUMN_LIST,
    COLUMNS,
    FILTER_COLUMNS,
    UPDATED_COLUMNS,
    record_from_row,
    row_from_record,
    updated_values,
)

Connection = psycopg.AsyncConnection[TupleRow]

_MARKS = ", ".join(["%s"] * len(COLUMNS))
_SET_COLUMNS = ", ".join(f"{column} = %s" for column in UPDATED_COLUMNS)
# pg_advisory_xact_lock key taken just before a transaction writes its change
# rows, held until it commits (see PostgresTransaction._log_changes).
_CHANGE_LOG_LOCK_KEY = 0x5354_4947_4348_47  # "STIGCHG"
# How often an insert whose conflicting row vanished (deleted by a
# concurrent transaction between our INSERT and SELECT) is tried again.
_INSERT_ATTEMPTS = 3


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


# -- rows ---------------------------------------------------------------------------------


def _to_record(row: Sequence[Any]) -> Record:
    # psycopg reads jsonb as a dict already.
    return record_from_row(row, dict)


def _to_row(record: Record) -> tuple[Any, ...]:
    return row_from_record(record, Jsonb)


def _to_change_row(change_type: str, record: Record) -> tuple[Any, ...]:
    """A change row for unnest(): labels as JSON text (psycopg has no jsonb[] adapter)."""
    return (change_type, *row_from_record(record, json.dumps))


def _limit(limit: int) -> int | None:
    """A LIMIT parameter: negative means no limit, as in SQLite (PostgreSQL's LIMIT NULL)."""
    return limit if limit >= 0 else None


# -- transactions -------------------------------------------------------------------------


class PostgresTransaction(PostgresAccessTokens, PostgresArtifacts, PostgresUsageRecords):
    """One transaction on one pooled connection: explicit BEGIN, then COMMIT or ROLLBACK
    (the connections are in autocommit mode, so psycopg opens no transaction of its own)."""

    def __init__(
        self,
        connection: Connection,
        *,
        write: bool,
        where: str,
        store: object,
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
        # bug. Tasks it starts wait for it to end before opening their own on
        # the same store (see PostgresStore.transaction).
        self.task = asyncio.current_task()
        self.store = store
        self.ended = asyncio.Event()
        # Rows read in a write transaction stay locked until it ends (see the package doc).
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
            translated = translate(error, self._where)
            if self._connection.info.transaction_status == TransactionStatus.INERROR:
                self._failure = translated
            raise translated from error

    async def _record(self, sql: LiteralString, parameters: Sequence[Any]) -> Record | None:
        row = await (await self._execute(sql, parameters)).fetchone()
        return _to_record(row) if row is not None else None

    @property
    def has_changes_to_log(self) -> bool:
        """Whether committing writes change rows (so watchers have news)."""
        return bool(self._changes) and not self.is_discarded

    async def begin(self) -> None:
        await self._execute(
            "BEGIN ISOLATION LEVEL READ COMMITTED"
            if self.is_write
            else "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        )

    async def finish(self) -> None:
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
                await self.roll_back_quietly()
                raise
        if self.has_written:
            crash_point("store/before-commit")
        await self._execute("COMMIT")
        if self.has_written:
            crash_point("store/after-commit")

    async def roll_back_quietly(self) -> None:
        """Rolls back on the way out of an exception; a dead connection is the pool's to drop."""
        with suppress(psycopg.Error):
            await self._connection.execute("ROLLBACK")

    # -- resources ------------------------------------------------------------

    async def get(self, kind: str, resource_id: str) -> Record | None:
        return await self._record(
            f"SELECT {COLUMN_LIST} FROM resources WHERE id = %s AND kind = %s{self._lock}",
            (resource_id, kind),
        )

    async def get_by_slug(self, kind: str, org: str, slug: str) -> Record | None:
        return await self._record(
            f"SELECT {COLUMN_LIST} FROM resources WHERE kind = %s AND org = %s AND slug = %s"
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
                f"INSERT INTO resources ({COLUMN_LIST}) VALUES ({_MARKS}) "
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
                f"SELECT {COLUMN_LIST} FROM resources WHERE id = %s", (record.id,)
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
            (
                *updated_values(row),
                record.id,
                record.kind,
                expected_version,
                record.org,
                record.slug,
            ),
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
                (*updated_values(row), record.id, record.kind, expected_version),
                savepoint=True,
            )
        except DuplicateKey:
            holder = await self._record(
                f"SELECT {COLUMN_LIST} FROM resources WHERE kind = %s AND org = %s AND slug = %s",
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
            f"RETURNING {COLUMN_LIST}), "
            "events AS (DELETE FROM resource_events WHERE resource_id IN (SELECT id FROM gone)), "
            "lease AS (DELETE FROM leases WHERE resource_id IN (SELECT id FROM gone)) "
            f"SELECT {COLUMN_LIST} FROM gone",
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
        # One statement for the batch: a column array each, in COLUMNS order.
        rows = [_to_change_row(change_type, record) for change_type, record in changes]
        columns = zip(*rows, strict=True)
        cursor = await self._execute(
            f"INSERT INTO resource_changes (change_type, {COLUMN_LIST}) "
            f"SELECT change_type, {COLUMN_LIST.replace('labels', 'labels::jsonb')} "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::bigint[], %s::bytea[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], %s::text[]) WITH ORDINALITY AS t(change_type, "
            f"{COLUMN_LIST}, n) ORDER BY n RETURNING sequence",
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
        self, after: int, kinds: Sequence[str] = (), limit: int = LOG_PAGE_SIZE
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
            f"SELECT sequence, change_type, {COLUMN_LIST} FROM resource_changes "
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
        for column in FILTER_COLUMNS:
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
            f"SELECT {COLUMN_LIST} FROM resources WHERE {where} ORDER BY id LIMIT %s",
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
        self, resource_id: str, after_sequence: int, limit: int = LOG_PAGE_SIZE
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

    async def list_expired_leases(self, now: float, limit: int = PAGE_SIZE) -> builtins.list[Lease]:
        cursor = await self._execute(
            "SELECT resource_id, owner, expires_at FROM leases WHERE expires_at < %s "
            "ORDER BY expires_at LIMIT %s",
            (now, _limit(limit)),
        )
        return [Lease(row[0], row[1], float(row[2])) for row in await cursor.fetchall()]
