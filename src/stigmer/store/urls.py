"""Choosing a store backend from a URL or path.

`sqlite:///abs/path.db`, `sqlite:relative.db`, or a bare path select SQLite;
`postgres://` / `postgresql://` select PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from stigmer.errors import InvalidArgument, Unavailable
from stigmer.store.base import Store
from stigmer.store.sqlite import SqliteStore


def store_from_url(url: str) -> Store:
    """A closed store for the URL; call `open()` before use.

    Raises:
        InvalidArgument: the URL names no backend Stigmer has, or is malformed.
        Unavailable: the PostgreSQL driver (psycopg) is not installed.
    """
    if url.startswith(("postgres://", "postgresql://")):
        # Imported here: SQLite-only use never loads psycopg.
        try:
            from stigmer.store.postgres import PostgresStore
        except ImportError as error:
            raise Unavailable(
                f"the PostgreSQL store needs psycopg ({error}); "
                "install it with `pip install 'psycopg[binary,pool]>=3.3'`"
            ) from error
        return PostgresStore(url)
    if url.startswith("sqlite://"):
        return SqliteStore(Path(url.removeprefix("sqlite://")))
    if url.startswith("sqlite:"):
        return SqliteStore(Path(url.removeprefix("sqlite:")))
    if "://" in url:
        raise InvalidArgument.for_field("store", f"unknown store URL scheme in {url!r}")
    return SqliteStore(Path(url).expanduser())
