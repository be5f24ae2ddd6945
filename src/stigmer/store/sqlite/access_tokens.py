"""The SQLite half of the access-token table (see store/base.AccessToken):
a mixin of SqliteTransaction, kept apart from the resource statements.

A revoked token keeps its row, so `token list` still shows it; creating a
token of that name again replaces the revoked row (an upsert that only
fires on revoked rows), while a valid token's name stays taken.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stigmer.errors import AlreadyExists
from stigmer.store.base import AccessToken
from stigmer.store.rows import TOKEN_COLUMNS, to_token


class SqliteAccessTokens:
    has_written: bool

    if TYPE_CHECKING:
        # SqliteTransaction's statements, which translate sqlite3's errors.
        def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor: ...
        def _fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]: ...
        def _fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> Any | None: ...

    async def put_access_token(self, token: AccessToken) -> None:
        self.has_written = True
        cursor = self._execute(
            f"INSERT INTO access_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, NULL) "
            "ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
            "token_hash = excluded.token_hash, created_at = excluded.created_at, "
            "revoked_at = NULL WHERE access_tokens.revoked_at IS NOT NULL",
            (token.name, token.role, token.token_hash, token.created_at),
        )
        if cursor.rowcount == 0:
            raise AlreadyExists("AccessToken", token.name, token.name)

    async def get_access_token(self, token_hash: str) -> AccessToken | None:
        row = self._fetch_one(
            f"SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE token_hash = ?", (token_hash,)
        )
        return to_token(row) if row is not None else None

    async def list_access_tokens(self) -> list[AccessToken]:
        rows = self._fetch_all(f"SELECT {TOKEN_COLUMNS} FROM access_tokens ORDER BY name")
        return [to_token(row) for row in rows]

    async def revoke_access_token(self, name: str, at: float) -> AccessToken | None:
        self.has_written = True
        self._execute(
            "UPDATE access_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (at, name),
        )
        row = self._fetch_one(f"SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE name = ?", (name,))
        return to_token(row) if row is not None else None
