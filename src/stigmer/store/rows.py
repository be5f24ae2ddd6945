"""A `Record` as a table row, the same in every backend.

The `resources` table and the `resource_changes` log hold a record in the
same columns, in `COLUMNS` order. The backends differ in one column only:
how the labels mapping is stored (JSON text in SQLite, `jsonb` in
PostgreSQL), so each passes its own label codec; everything else, and the
order every statement relies on, lives here once. The `access_tokens`
table is read the same way in both backends (`TOKEN_COLUMNS`, `to_token`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stigmer.store.base import AccessToken, Record

COLUMNS = (
    "kind",
    "id",
    "org",
    "slug",
    "version",
    "data",
    "owner_id",
    "labels",
    "agent_id",
    "agent_instance_id",
    "session_id",
    "phase",
)
# The column list of a SELECT or INSERT, in COLUMNS order.
COLUMN_LIST = ", ".join(COLUMNS)
# What an update may change: everything but the key (kind, id), which it matches on.
UPDATED_COLUMNS = COLUMNS[2:]
# The columns a ListQuery filters on by equality, named as its fields are.
FILTER_COLUMNS = ("org", "owner_id", "agent_id", "agent_instance_id", "session_id", "phase")

LabelEncoder = Callable[[dict[str, str]], Any]
LabelDecoder = Callable[[Any], Mapping[str, str]]


def record_from_row(row: Sequence[Any], decode_labels: LabelDecoder) -> Record:
    """The record of a row whose first len(COLUMNS) values are in COLUMNS order."""
    return Record(
        kind=row[0],
        id=row[1],
        org=row[2],
        slug=row[3],
        version=row[4],
        data=bytes(row[5]),
        owner_id=row[6],
        labels=decode_labels(row[7]),
        agent_id=row[8],
        agent_instance_id=row[9],
        session_id=row[10],
        phase=row[11],
    )


def row_from_record(record: Record, encode_labels: LabelEncoder) -> tuple[Any, ...]:
    """The record's values in COLUMNS order."""
    return (
        record.kind,
        record.id,
        record.org,
        record.slug,
        record.version,
        record.data,
        record.owner_id,
        encode_labels(dict(record.labels)),
        record.agent_id,
        record.agent_instance_id,
        record.session_id,
        record.phase,
    )


def updated_values(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The values of a row_from_record row for UPDATED_COLUMNS, in that order."""
    return row[len(COLUMNS) - len(UPDATED_COLUMNS) :]


TOKEN_COLUMNS = "name, role, token_hash, created_at, revoked_at"


def to_token(row: Sequence[Any]) -> AccessToken:
    """An `access_tokens` row, read in `TOKEN_COLUMNS` order."""
    revoked = row[4]
    return AccessToken(
        name=row[0],
        role=row[1],
        token_hash=row[2],
        created_at=float(row[3]),
        revoked_at=float(revoked) if revoked is not None else None,
    )
