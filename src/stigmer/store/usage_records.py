"""Usage records: one row per model call, beside the resources.

A record is written in the same transaction as the event that reports the
call (the execution's record-events pipeline), keyed by (execution, call):
a report that arrives twice inserts once. Its columns are what reports
filter and group on (org, agent, session, model, day, time), each under an
index, so a usage report sums rows and never reads an execution. Records
outlive the execution they came from: what was spent stays spent.

The SQL here is the same in both backends but for the placeholder, which
each passes in (`?` for SQLite, `%s` for PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Grouping = Literal["agent_id", "model", "day"]

USAGE_COLUMNS = (
    "execution_id",
    "call_id",
    "org",
    "agent_id",
    "session_id",
    "sub_agent",
    "provider",
    "model",
    "day",
    "at",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "duration_ms",
    "cost_micros",
    "price_input_micros",
    "price_output_micros",
    "price_cached_micros",
)
USAGE_COLUMN_LIST = ", ".join(USAGE_COLUMNS)
SUMS = (
    "COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
    "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "
    "COALESCE(SUM(cost_micros), 0), COUNT(DISTINCT execution_id)"
)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One model call: whose it was, what the provider counted, what it cost.

    `day` is the UTC date of `at` (epoch seconds) as YYYY-MM-DD; the price is
    the one the cost was computed with, in micro-dollars per million tokens.
    """

    execution_id: str
    call_id: str
    org: str
    agent_id: str
    session_id: str
    sub_agent: str
    provider: str
    model: str
    day: str
    at: float
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    duration_ms: int
    cost_micros: int
    price_input_micros: int
    price_output_micros: int
    price_cached_micros: int

    def as_row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, column) for column in USAGE_COLUMNS)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Which records a report sums: of one org, optionally one agent, one
    session, and only those at or after `since` (epoch seconds)."""

    org: str
    agent_id: str = ""
    session_id: str = ""
    since: float | None = None


@dataclass(frozen=True, slots=True)
class UsageSum:
    key: str  # the group's value; "" for the total
    model_calls: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_micros: int
    executions: int


def usage_sum_sql(query: UsageQuery, group_by: Grouping | None, mark: str) -> tuple[str, list[Any]]:
    """The SELECT that sums the query's records, grouped or not."""
    where = ["org = " + mark]
    parameters: list[Any] = [query.org]
    if query.agent_id:
        where.append("agent_id = " + mark)
        parameters.append(query.agent_id)
    if query.session_id:
        where.append("session_id = " + mark)
        parameters.append(query.session_id)
    if query.since is not None:
        where.append("at >= " + mark)
        parameters.append(query.since)
    key = group_by if group_by is not None else "''"
    sql = f"SELECT {key}, {SUMS} FROM usage_records WHERE {' AND '.join(where)}"
    if group_by is not None:
        sql += f" GROUP BY {group_by} ORDER BY {group_by}"
    return sql, parameters


def to_usage_sum(row: Sequence[Any]) -> UsageSum:
    return UsageSum(str(row[0]), *(int(value) for value in row[1:8]))
