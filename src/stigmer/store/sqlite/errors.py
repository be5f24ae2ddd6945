"""The one translation from sqlite3 errors to Stigmer errors.

Every statement of the SQLite store runs inside `translated`, which passes a
sqlite3 error through `translate`: the first row of `ERROR_TABLE` whose
result codes match decides. A busy database (another process held the write
lock past the busy timeout) is `Unavailable` saying "busy"; a file or disk
that cannot be used is `Unavailable` naming it; the rest is `Internal`.

A unique index refusing a row becomes `DuplicateKey`: the table cannot know
which resource collided, the write that ran the statement does and raises
`AlreadyExists` with its kind, slug and the holder's id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stigmer.errors import Internal, StigmerError, Unavailable


class DuplicateKey(Internal):
    """A statement hit a unique index: (kind, org, slug), an id, an event's sequence.

    The write that ran it knows which row it collided with and raises the
    error that means (AlreadyExists, or Internal for an event sequence); one
    that escapes is a statement that should not have collided: a bug.
    """


def _busy(error: sqlite3.Error, path: Path) -> StigmerError:
    return Unavailable(f"store busy ({path}): {error}; retry")


def _unusable(error: sqlite3.Error, path: Path) -> StigmerError:
    return Unavailable(f"cannot use the SQLite store {path}: {error}")


def _duplicate(error: sqlite3.Error, path: Path) -> StigmerError:
    return DuplicateKey(f"SQLite store {path}: {error}")


# Rows are matched on the error's result code, primary (the low byte) or
# extended; the first row that matches wins, the last matches every error.
ERROR_TABLE: tuple[tuple[frozenset[int], Callable[[sqlite3.Error, Path], StigmerError]], ...] = (
    (
        frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}),
        _duplicate,
    ),
    # The busy timeout ran out: another process held the write lock.
    (frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}), _busy),
    # The file, its disk or its permissions: nothing a retry of the request fixes.
    (
        frozenset({sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR}),
        _unusable,
    ),
    (frozenset(), lambda error, path: Internal(f"SQLite store {path}: {error}")),
)


def translate(error: sqlite3.Error, path: Path) -> StigmerError:
    """The Stigmer error for a sqlite3 error: the first row of ERROR_TABLE that matches."""
    code: int | None = getattr(error, "sqlite_errorcode", None)
    for codes, make in ERROR_TABLE:
        if not codes or (code is not None and {code, code & 0xFF} & codes):
            return make(error, path)
    raise AssertionError("the table's last row matches every error")  # pragma: no cover


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """Runs the block with sqlite3 errors translated (see translate)."""
    try:
        yield
    except sqlite3.Error as error:
        raise translate(error, path) from error
