"""Fixtures shared by the whole suite: a real server on 127.0.0.1:0 over a
real store in a temporary folder, and clients for it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stigmer.client import Client
from stigmer.testing.server import ServerThread

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return str(tmp_path / "stigmer.db")


@pytest.fixture
def server(store_url: str) -> Iterator[ServerThread]:
    with ServerThread(store_url) as running:
        yield running


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.address) as connected:
        yield connected


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Cli:
    """Runs the real `stigmer` command in a subprocess, as a user would."""

    env: dict[str, str]
    cwd: Path

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 60) -> CliResult:
        completed = subprocess.run(
            [sys.executable, "-m", "stigmer.cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=timeout,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def stigmer_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def cli(server: ServerThread, stigmer_home: Path, tmp_path: Path) -> Cli:
    """The CLI pointed at the test server, with its own STIGMER_HOME."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STIGMER_")}
    env.update(STIGMER_HOME=str(stigmer_home), STIGMER_SERVER=server.address)
    return Cli(env, tmp_path)
