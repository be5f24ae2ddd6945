"""Fixtures for the store contract suite: one event loop per test, one store per backend.

Every backend-specific line lives in `STORE_FACTORIES`: adding a backend means adding a
factory and its name to `STORE_BACKENDS` (tests/conftest.py), nothing in the tests.

The project does not use pytest-asyncio. A test takes the `run` fixture (the `run`
method of the test's `asyncio.Runner`) and calls `run(scenario())` on an inner
coroutine. The `store` fixture opens and closes its store with the same `run`, so the
store's loop-bound state (locks, connection pools) lives on one event loop throughout.

PostgreSQL: the session's one throwaway server and a fresh database per test come from
`postgres_server` / `postgres_url` in tests/conftest.py, shared with the server suites.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from stigmer.store.base import Store
from stigmer.store.sqlite import SqliteStore
from tests.conftest import STORE_BACKENDS

RunCoroutine = Callable[[Coroutine[Any, Any, Any]], Any]


def _sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "store.db")


def _postgres_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    from stigmer.store.postgres import PostgresStore  # psycopg only for this backend

    url: str = request.getfixturevalue("postgres_url")
    return PostgresStore(url)


STORE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "sqlite": _sqlite_store,
    "postgres": _postgres_store,
}


@pytest.fixture
def run() -> Iterator[RunCoroutine]:
    """Runs a coroutine to completion on this test's event loop."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, run: RunCoroutine, tmp_path: Path) -> Iterator[Store]:
    """An open, empty store of each backend; closed when the test ends."""
    backend: str = request.param
    opened = STORE_FACTORIES[backend](request, tmp_path)
    run(opened.open())
    try:
        yield opened
    finally:
        # Bounded, so a test that leaves a transaction hanging fails instead of hanging.
        run(asyncio.wait_for(opened.close(), timeout=30))
