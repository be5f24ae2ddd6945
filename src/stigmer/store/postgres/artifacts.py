"""The PostgreSQL half of the artifact table (see store/base.Transaction): a
mixin of PostgresTransaction, kept apart from the resource statements.
Same rules as store/sqlite/artifacts.py; the bytes live in the database, so
a deployment of several servers and workers needs no shared disk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, LiteralString

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow


class PostgresArtifacts:
    has_written: bool

    if TYPE_CHECKING:

        async def _execute(
            self, sql: LiteralString, parameters: Sequence[Any] = (), *, savepoint: bool = False
        ) -> psycopg.AsyncCursor[TupleRow]: ...

    async def put_artifact(self, owner_id: str, digest: str, data: bytes) -> bool:
        self.has_written = True
        cursor = await self._execute(
            "INSERT INTO artifacts (owner_id, hash, size, data) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (owner_id, hash) DO NOTHING",
            (owner_id, digest, len(data), data),
        )
        return cursor.rowcount > 0

    async def get_artifact(self, owner_id: str, digest: str) -> bytes | None:
        cursor = await self._execute(
            "SELECT data FROM artifacts WHERE owner_id = %s AND hash = %s", (owner_id, digest)
        )
        row = await cursor.fetchone()
        return bytes(row[0]) if row is not None else None

    async def delete_artifacts(self, owner_id: str) -> int:
        self.has_written = True
        cursor = await self._execute("DELETE FROM artifacts WHERE owner_id = %s", (owner_id,))
        return cursor.rowcount
