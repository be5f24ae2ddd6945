"""The CLI's tests run their server on SQLite only, unlike the suite-wide
`store_url`: they are about commands, output and exit codes, and the server
suites (control plane, executions, consistency) already run everything the
CLI asks of the server on both stores."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return str(tmp_path / "stigmer.db")
