"""The PostgreSQL half of the access-token table (see store/base.AccessToken):
a mixin of PostgresTransaction, kept apart from the resource statements.
Same rules as store/sqlite/access_tokens.py."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, LiteralString

from stigmer.errors import AlreadyExists
from stigmer.store.base import AccessToken
from stigmer.store.rows import to_token

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow


class PostgresAccessTokens:
    has_written: bool

    if TYPE_CHECKING:

        async def _execute(
            self, sql: LiteralString, parameters: Sequence[Any] = (), *, savepoint: bool = False
        ) -> psycopg.AsyncCursor[TupleRow]: ...

    async def put_access_token(self, token: AccessToken) -> None:
        self.has_written = True
        cursor = await self._execute(
            "INSERT INTO access_tokens (name, role, token_hash, created_at, revoked_at) "
            "VALUES (%s, %s, %s, %s, NULL) "
            "ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
            "token_hash = excluded.token_hash, created_at = excluded.created_at, "
            "revoked_at = NULL WHERE access_tokens.revoked_at IS NOT NULL",
            (token.name, token.role, token.token_hash, token.created_at),
        )
        if cursor.rowcount == 0:
            raise AlreadyExists("AccessToken", token.name, token.name)

    async def get_access_token(self, token_hash: str) -> AccessToken | None:
        cursor = await self._execute(
            "SELECT name, role, token_hash, created_at, revoked_at FROM access_tokens "
            "WHERE token_hash = %s",
            (token_hash,),
        )
        row = await cursor.fetchone()
        return to_token(row) if row is not None else None

    async def list_access_tokens(self) -> builtins.list[AccessToken]:
        cursor = await self._execute(
            "SELECT name, role, token_hash, created_at, revoked_at FROM access_tokens ORDER BY name"
        )
        return [to_token(row) for row in await cursor.fetchall()]

    async def revoke_access_token(self, name: str, at: float) -> AccessToken | None:
        self.has_written = True
        await self._execute(
            "UPDATE access_tokens SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL",
            (at, name),
        )
        cursor = await self._execute(
            "SELECT name, role, token_hash, created_at, revoked_at FROM access_tokens "
            "WHERE name = %s",
            (name,),
        )
        row = await cursor.fetchone()
        return to_token(row) if row is not None else None
