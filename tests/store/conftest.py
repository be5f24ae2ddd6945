"""Fixtures for the store suites: one event loop per test, one store per backend.

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
from tests.store.calls import StoreFactory

RunCoroutine = Callable[[Coroutine[Any, Any, Any]], Any]


def _sqlite_stores(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    path = tmp_path / "store.db"

    def make(**options: Any) -> Store:
        return SqliteStore(path, **options)

    return make


def _postgres_stores(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    from stigmer.store.postgres import PostgresStore  # psycopg only for this backend

    url: str = request.getfixturevalue("postgres_url")

    def make(**options: Any) -> Store:
        return PostgresStore(url, **options)

    return make


STORE_FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], StoreFactory]] = {
    "sqlite": _sqlite_stores,
    "postgres": _postgres_stores,
}


@pytest.fixture
def run() -> Iterator[RunCoroutine]:
    """Runs a coroutine to completion on this test's event loop."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture(params=STORE_BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Stores of each backend, all on one database (the one `store` is open on)."""
    backend: str = request.param
    return STORE_FACTORIES[backend](request, tmp_path)


@pytest.fixture
def store(store_factory: StoreFactory, run: RunCoroutine) -> Iterator[Store]:
    """An open, empty store of each backend; closed when the test ends."""
    opened = store_factory()
    run(opened.open())
    try:
        yield opened
    finally:
        # Bounded, so a test that leaves a transaction hanging fails instead of hanging.
        run(asyncio.wait_for(opened.close(), timeout=30))
