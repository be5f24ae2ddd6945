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

Every psycopg error is translated in one place, `errors.translate`.

The package: `store.py` (the pool, migrations, opening transactions),
`transaction.py` (the statements), `errors.py` (the error table), `urls.py`
(URLs without their password), `schema.py` (the migrations).
"""

from stigmer.store.postgres.store import PostgresStore
from stigmer.store.postgres.transaction import PostgresTransaction

__all__ = ["PostgresStore", "PostgresTransaction"]
