"""The PostgreSQL store: the pool, the schema migrations, opening transactions.

Servers opening one database at the same time migrate it one after the
other (under an advisory lock); transactions each take a pooled connection
from BEGIN to COMMIT (store/postgres/transaction.py).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool

from stigmer.errors import Internal, InvalidArgument, Unavailable
from stigmer.store.changes import CHANGES_KEPT, ChangeSignal
from stigmer.store.postgres.errors import translate
from stigmer.store.postgres.schema import MIGRATIONS
from stigmer.store.postgres.transaction import Connection, PostgresTransaction
from stigmer.store.postgres.urls import describe_server, redact_password

# pg_advisory_xact_lock key taken while migrating: servers starting at the
# same time migrate one after the other (advisory locks are per database).
_MIGRATION_LOCK_KEY = 0x5354_4947_4D45_52  # "STIGMER"
_current_transaction: contextvars.ContextVar[PostgresTransaction | None] = contextvars.ContextVar(
    "stigmer_postgres_transaction", default=None
)


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
                "store", f"bad PostgreSQL URL {redact_password(url)!r}: {error}"
            ) from None
        self.url = redact_password(url)
        self._conninfo = url
        self._where = describe_server(parameters)
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
            raise translate(error, self._where) from error
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
                raise translate(error, self._where) from error
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
            raise translate(error, self._where) from error

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
                await transaction.roll_back_quietly()
                raise
            else:
                has_changes = transaction.has_changes_to_log
                await transaction.finish()
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
                raise translate(error, self._where) from error
            transaction = PostgresTransaction(
                connection,
                write=write,
                where=self._where,
                store=self,
                changes_kept=self._changes_kept,
            )
            try:
                await transaction.begin()
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
