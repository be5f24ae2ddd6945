"""The store a benchmark's Stigmer server runs on, chosen with `--store`.

    --store sqlite     a SQLite file in a temporary directory (the default)
    --store postgres   a fresh database on a throwaway PostgreSQL server
    --store both       SQLite first, then PostgreSQL, printed side by side

A benchmark asks a `BenchStore` for the URL of a new, empty store and hands it
to its server process (`ServerOptions.store_url` takes either backend's URL),
so the measured code path is the server's own. Where a benchmark compares a
lookup with the same lookup in plain SQL (its floor), `raw_connection` opens a
plain driver connection to that store: sqlite3 in-process for SQLite, a
synchronous psycopg connection over TCP for PostgreSQL. Both floors are
measured in the same run as what they are compared with.

Only one store is alive at a time: the PostgreSQL server is started when its
part of the run begins and stopped (its directory deleted) when that part
ends, so its background processes never run beside a SQLite measurement. A
bench run starts at most one PostgreSQL server and creates one database per
Stigmer server on it.

This module is about the store only, so that other choices of a benchmark
(the engine, say) can sit beside it without touching it.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stigmer.testing.postgres import TemporaryPostgres

STORE_NAMES = ("sqlite", "postgres")
"""The backends, in the order `--store both` runs them."""


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        choices=(*STORE_NAMES, "both"),
        default="sqlite",
        help="the store behind the Stigmer server (both: SQLite, then PostgreSQL)",
    )


def chosen_stores(option: str) -> tuple[str, ...]:
    """The store names selected by the value of `--store`."""
    return STORE_NAMES if option == "both" else (option,)


class RawCursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


class RawConnection(Protocol):
    """What sqlite3 and psycopg connections have in common (placeholders differ)."""

    def execute(self, sql: str, parameters: Sequence[Any], /) -> RawCursor: ...


class BenchStore(Protocol):
    name: str
    """The backend as printed: "SQLite" or "PostgreSQL"."""
    driver: str
    """The plain driver behind `raw_connection`, as printed in floor labels."""
    placeholder: str
    """The driver's parameter marker for raw SQL."""
    writers: int
    """How many transactions a bulk load runs at once."""

    def describe(self) -> str:
        """Version and settings, for a benchmark's header."""
        ...

    def new_url(self, label: str) -> str:
        """The URL of a new, empty store; `label` is a lowercase identifier."""
        ...

    def raw_connection(self, url: str) -> AbstractContextManager[RawConnection]:
        """A plain driver connection to the store at `url`, for reading."""
        ...

    def refresh_statistics(self, url: str) -> str:
        """Brings the planner's statistics up to date after a bulk load; returns
        what it did, for the output ("" when nothing)."""
        ...


class SqliteBenchStore:
    name = "SQLite"
    driver = "sqlite3"
    placeholder = "?"
    writers = 1  # SQLite writes one transaction at a time anyway

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def describe(self) -> str:
        return (
            f"SQLite {sqlite3.sqlite_version}: a file per server in a temporary directory "
            "(the store's own settings: WAL, synchronous=NORMAL)"
        )

    def new_url(self, label: str) -> str:
        return str(self.directory / f"{label}.db")

    @contextmanager
    def raw_connection(self, url: str) -> Iterator[RawConnection]:
        # Read-only: the floor must not take a write lock the server could wait on.
        connection = sqlite3.connect(f"file:{url}?mode=ro", uri=True, isolation_level=None)
        with closing(connection):
            yield connection

    def refresh_statistics(self, url: str) -> str:
        # SQLite plans the store's lookups by its indexes alone, and the store
        # never runs ANALYZE: measure it as it runs.
        return ""


class PostgresBenchStore:
    name = "PostgreSQL"
    driver = "psycopg"
    placeholder = "%s"
    # A row is a round trip to the server: concurrent transactions overlap
    # them (about twice as fast on 2 cores).
    writers = 4

    def __init__(self, server: TemporaryPostgres, server_version: str) -> None:
        self.server = server
        self.server_version = server_version

    def describe(self) -> str:
        import psycopg

        return (
            f"PostgreSQL {self.server_version} (psycopg {psycopg.__version__}): a database per "
            "server on one throwaway cluster (TemporaryPostgres: in /dev/shm when it has room, "
            "fsync and synchronous_commit off), reached over TCP on 127.0.0.1"
        )

    def new_url(self, label: str) -> str:
        # A named database rather than TemporaryPostgres.new_database(), which
        # creates the next one in the background: nothing may run beside a
        # measurement that the measurement did not ask for.
        return self.server.create_database(f"bench_{label}")

    @contextmanager
    def raw_connection(self, url: str) -> Iterator[RawConnection]:
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            yield connection

    def refresh_statistics(self, url: str) -> str:
        # Rows a server writes one by one are analyzed by autovacuum as they
        # come; rows loaded in bulk and read at once are not, and without
        # statistics the planner looks a slug up by (kind, org) and filters
        # every agent of the org. ANALYZE does what autovacuum would do within
        # a minute.
        with self.raw_connection(url) as connection:
            connection.execute("ANALYZE", ())
        return "ANALYZE after seeding (as autovacuum would within a minute)"


@contextmanager
def open_bench_store(name: str) -> Iterator[BenchStore]:
    """The store `name` for as long as the `with` lasts; everything it made is
    removed afterwards (the temporary directory, the PostgreSQL server)."""
    if name == "sqlite":
        with tempfile.TemporaryDirectory(prefix="stigmer-bench-") as directory:
            yield SqliteBenchStore(Path(directory))
        return
    if name != "postgres":
        raise ValueError(f"unknown store {name!r}; expected one of {STORE_NAMES}")
    # Imported here, as the store itself does: a SQLite-only run never loads psycopg.
    import psycopg

    from stigmer.testing.postgres import TemporaryPostgres

    with TemporaryPostgres() as server:
        url = server.url()
        with psycopg.connect(url, autocommit=True) as connection:
            row = connection.execute("SHOW server_version").fetchone()
        yield PostgresBenchStore(server, str(row[0]) if row else "?")
