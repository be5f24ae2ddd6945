"""The one translation from psycopg errors to Stigmer errors.

Every statement, connect and pool wait of the PostgreSQL store passes its
psycopg error through `translate`, which reads `ERROR_TABLE` top to bottom:
the first class that matches decides. Contention the caller can retry
(deadlocks, serialization failures, lock and pool timeouts) is
`Unavailable` saying "busy"; a server that cannot be reached is
`Unavailable` naming it; the rest is `Internal`.

A unique violation becomes `DuplicateKey`: the table cannot know which
resource collided, the statement's caller does and raises `AlreadyExists`
with its kind, slug and the holder's id.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from stigmer.errors import Internal, StigmerError, Unavailable


class DuplicateKey(Internal):
    """A statement hit a unique index (the index is `constraint`).

    The write that ran it turns this into the `AlreadyExists` it means; one
    that escapes is a statement that should not have collided: a bug.
    """

    def __init__(self, message: str, *, constraint: str) -> None:
        super().__init__(message, facts={"constraint": constraint})

    @property
    def constraint(self) -> str:
        return self.facts.get("constraint", "")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _busy(error: psycopg.Error, where: str) -> StigmerError:
    return Unavailable(f"store busy ({where}): {first_line(error)}; retry")


def _unreachable(error: psycopg.Error, where: str) -> StigmerError:
    return Unavailable(f"cannot reach the PostgreSQL store at {where}: {first_line(error)}")


def _duplicate(error: psycopg.Error, where: str) -> StigmerError:
    return DuplicateKey(
        f"PostgreSQL store at {where}: {first_line(error)}",
        constraint=error.diag.constraint_name or "",
    )


ERROR_TABLE: tuple[
    tuple[type[psycopg.Error], Callable[[psycopg.Error, str], StigmerError]], ...
] = (
    (pg_errors.UniqueViolation, _duplicate),
    (pg_errors.DeadlockDetected, _busy),
    (pg_errors.SerializationFailure, _busy),
    (pg_errors.LockNotAvailable, _busy),  # lock_timeout: another writer held the row
    (pg_errors.QueryCanceled, _busy),
    (
        PoolTimeout,
        lambda error, where: Unavailable(
            f"store busy ({where}): no database connection became free in time; retry"
        ),
    ),
    (
        pg_errors.InFailedSqlTransaction,
        lambda error, where: Internal(
            "the store transaction was aborted by an earlier failed statement; roll it back"
        ),
    ),
    (
        pg_errors.ReadOnlySqlTransaction,
        lambda error, where: Internal(
            "a write in a read-only store transaction; open it with transaction(write=True)"
        ),
    ),
    (psycopg.OperationalError, _unreachable),  # connection refused, lost, admin shutdown
    (psycopg.InterfaceError, _unreachable),  # the connection was closed under us
    (psycopg.Error, lambda error, where: Internal(f"PostgreSQL store at {where}: {error}")),
)


def translate(error: psycopg.Error, where: str) -> StigmerError:
    """The Stigmer error for a psycopg error met at `where` (host:port/database):
    the first row of ERROR_TABLE that matches."""
    for error_class, make in ERROR_TABLE:
        if isinstance(error, error_class):
            return make(error, where)
    raise AssertionError("psycopg.Error is the table's last row")  # pragma: no cover
