"""Fixtures for the store contract suite: one event loop per test, one store per backend.

Every backend-specific line lives in `STORE_FACTORIES`; adding a backend (PostgreSQL)
means adding a factory and its name to `BACKENDS`, nothing in the tests.

The project does not use pytest-asyncio. A test takes the `runner` fixture (an
`asyncio.Runner`) and calls `runner.run(scenario())` on an inner coroutine. The
`store` fixture opens and closes its store on that same runner, so the store's
loop-bound state (locks, pools) lives on one event loop for the whole test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stigmer.store.base import Store
from stigmer.store.sqlite import SqliteStore


def _sqlite_store(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "store.db")


STORE_FACTORIES: dict[str, Callable[[Path], Store]] = {
    "sqlite": _sqlite_store,
}
BACKENDS = ["sqlite"]


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """The event loop of one test; `runner.run(coroutine)` runs a scenario on it."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, runner: asyncio.Runner, tmp_path: Path) -> Iterator[Store]:
    """An open, empty store of each backend; closed when the test ends."""
    backend: str = request.param
    opened = STORE_FACTORIES[backend](tmp_path)
    runner.run(opened.open())
    try:
        yield opened
    finally:
        runner.run(opened.close())
