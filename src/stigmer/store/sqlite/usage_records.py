"""The SQLite half of the usage records (store/usage_records.py): a mixin of
SqliteTransaction, kept apart from the resource statements."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stigmer.store.usage_records import (
    USAGE_COLUMN_LIST,
    USAGE_COLUMNS,
    Grouping,
    UsageQuery,
    UsageRecord,
    UsageSum,
    to_usage_sum,
    usage_sum_sql,
)

_MARKS = ", ".join("?" * len(USAGE_COLUMNS))


class SqliteUsageRecords:
    has_written: bool

    if TYPE_CHECKING:

        def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor: ...
        def _fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]: ...

    async def insert_usage(self, record: UsageRecord) -> bool:
        self.has_written = True
        cursor = self._execute(
            f"INSERT INTO usage_records ({USAGE_COLUMN_LIST}) VALUES ({_MARKS}) "
            "ON CONFLICT (execution_id, call_id) DO NOTHING",
            record.as_row(),
        )
        return cursor.rowcount == 1

    async def sum_usage(self, query: UsageQuery, group_by: Grouping | None) -> list[UsageSum]:
        sql, parameters = usage_sum_sql(query, group_by, "?")
        return [to_usage_sum(row) for row in self._fetch_all(sql, parameters)]
