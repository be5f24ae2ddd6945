"""Choosing a store backend from a URL or path.

`sqlite:///abs/path.db`, `sqlite:relative.db`, or a bare path select SQLite;
`postgres://` / `postgresql://` select PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from stigmer.errors import InvalidArgument
from stigmer.store.base import Store
from stigmer.store.sqlite import SqliteStore


def store_from_url(url: str) -> Store:
    """A closed store for the URL; call `open()` before use.

    Raises:
        InvalidArgument: the URL names no backend Stigmer has.
    """
    if url.startswith(("postgres://", "postgresql://")):
        raise InvalidArgument.for_field(
            "store", "the PostgreSQL store is not available in this version of Stigmer"
        )
    if url.startswith("sqlite://"):
        return SqliteStore(Path(url.removeprefix("sqlite://")))
    if url.startswith("sqlite:"):
        return SqliteStore(Path(url.removeprefix("sqlite:")))
    if "://" in url:
        raise InvalidArgument.for_field("store", f"unknown store URL scheme in {url!r}")
    return SqliteStore(Path(url).expanduser())
