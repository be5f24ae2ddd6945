"""The SQLite store: the file's one connection, its migrations, opening transactions."""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from stigmer.errors import Internal, Unavailable
from stigmer.faults import crash_point
from stigmer.store.changes import CHANGES_KEPT, ChangeSignal
from stigmer.store.sqlite.errors import translate, translated
from stigmer.store.sqlite.schema import MIGRATIONS
from stigmer.store.sqlite.transaction import SqliteTransaction

_current_transaction: contextvars.ContextVar[SqliteTransaction | None] = contextvars.ContextVar(
    "stigmer_sqlite_transaction", default=None
)


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
            with translated(self.path):
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
            with translated(self.path):
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
            raise translate(error, self.path) from error


def _roll_back(connection: sqlite3.Connection) -> None:
    # Some failures (a full disk, an I/O error) make SQLite roll the whole
    # transaction back by itself; a ROLLBACK then would fail and hide them.
    if connection.in_transaction:
        connection.execute("ROLLBACK")
