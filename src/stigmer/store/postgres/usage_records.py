"""The PostgreSQL half of the usage records (store/usage_records.py): a
mixin of PostgresTransaction. Same statements as the SQLite half."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, LiteralString

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

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

# Built from this module's constants only, never from input.
_INSERT: LiteralString = (
    f"INSERT INTO usage_records ({USAGE_COLUMN_LIST}) "
    f"VALUES ({', '.join(['%s'] * len(USAGE_COLUMNS))}) "
    "ON CONFLICT (execution_id, call_id) DO NOTHING"
)


class PostgresUsageRecords:
    has_written: bool

    if TYPE_CHECKING:

        async def _execute(
            self, sql: LiteralString, parameters: Sequence[Any] = (), *, savepoint: bool = False
        ) -> psycopg.AsyncCursor[TupleRow]: ...

    async def insert_usage(self, record: UsageRecord) -> bool:
        self.has_written = True
        cursor = await self._execute(_INSERT, record.as_row())
        return cursor.rowcount == 1

    async def sum_usage(
        self, query: UsageQuery, group_by: Grouping | None
    ) -> builtins.list[UsageSum]:
        # The statement's text comes from fixed pieces (usage_sum_sql): the
        # query's values travel as parameters.
        sql, parameters = usage_sum_sql(query, group_by, "%s")
        cursor = await self._execute(sql, parameters)
        return [to_usage_sum(row) for row in await cursor.fetchall()]
