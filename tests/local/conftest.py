"""The local model for tests: the real default model, installed once per machine.

`make test` runs again and again on the same machine (CI too), so the model is
assembled into the real models folder (`~/.stigmer/models`, or `STIGMER_HOME`'s)
the first time and only checked (one `stat`) afterwards. Each test then gets
its own STIGMER_HOME, pointing at that file through STIGMER_LLM_MODEL_PATH, so
no user's config file changes what a test runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stigmer.runtime.model_files import install_model
from stigmer.testing.server import ServerThread
from tests import ROOT
from tests.local.local_model import local_engine


@pytest.fixture(scope="session")
def installed_model() -> Path:
    return install_model()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only, unlike the suite-wide `store_url`: these tests are about the
    local model, each of its runs costs seconds of both cores, and the server
    suites already run everything a local run does to the store on both backends."""
    return str(tmp_path / "stigmer.db")


@pytest.fixture
def local_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A STIGMER_HOME of the test's own, with no STIGMER_* or provider variable leaking in."""
    for name in list(os.environ):
        if name.startswith("STIGMER_") or name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("STIGMER_HOME", str(home))
    return home


@pytest.fixture
def quickstart_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where `make run` starts the server: the repository root, the virtualenv first on PATH."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


@pytest.fixture
def local_server(
    store_url: str, local_home: Path, installed_model: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerThread]:
    monkeypatch.setenv("STIGMER_LLM_MODEL_PATH", str(installed_model))
    with ServerThread(store_url, engine=local_engine()) as running:
        yield running
