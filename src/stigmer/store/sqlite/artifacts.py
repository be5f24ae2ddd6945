"""The SQLite half of the artifact table (see store/base.Transaction): a
mixin of SqliteTransaction, kept apart from the resource statements.

An artifact is bytes a resource owns, keyed by its content hash (a skill
version's archive). The same content pushed twice is one row; deleting the
owner deletes its artifacts in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any


class SqliteArtifacts:
    has_written: bool

    if TYPE_CHECKING:
        # SqliteTransaction's statements, which translate sqlite3's errors.
        def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor: ...
        def _fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> Any | None: ...

    async def put_artifact(self, owner_id: str, digest: str, data: bytes) -> bool:
        self.has_written = True
        cursor = self._execute(
            "INSERT INTO artifacts (owner_id, hash, size, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (owner_id, hash) DO NOTHING",
            (owner_id, digest, len(data), data),
        )
        return cursor.rowcount > 0

    async def get_artifact(self, owner_id: str, digest: str) -> bytes | None:
        row = self._fetch_one(
            "SELECT data FROM artifacts WHERE owner_id = ? AND hash = ?", (owner_id, digest)
        )
        return bytes(row[0]) if row is not None else None

    async def delete_artifacts(self, owner_id: str) -> int:
        self.has_written = True
        cursor = self._execute("DELETE FROM artifacts WHERE owner_id = ?", (owner_id,))
        return cursor.rowcount
