"""The SQLite backend: the default store, a single file in WAL mode.

The stdlib driver is synchronous. SQLite answers an indexed statement in
microseconds, so statements run directly on the event loop; what must not
happen is two transactions interleaving on the one connection, so an
asyncio lock serializes transactions. Write transactions start with
BEGIN IMMEDIATE: a deferred BEGIN that later writes fails at once with
"database is locked" when another process writes (the busy timeout does not
cover the upgrade).

Every sqlite3 error a statement raises is translated in one place,
`errors.translate`, so a failed statement inside a transaction comes out as the
Stigmer error it means (a busy database is `Unavailable`, a taken unique key
is turned into `AlreadyExists` by the write that knows which row holds it).
Unlike PostgreSQL, SQLite undoes only the failed statement; the transaction
goes on.

The package: `store.py` (the connection, migrations, opening transactions),
`transaction.py` (the statements), `errors.py` (the error table), `schema.py`
(the migrations).
"""

from stigmer.store.sqlite.store import SqliteStore
from stigmer.store.sqlite.transaction import SqliteTransaction

__all__ = ["SqliteStore", "SqliteTransaction"]
