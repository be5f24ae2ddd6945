"""Importing the command line loads neither the server side nor the SDKs of
models, tools, Temporal or PostgreSQL: every `stigmer` command pays for its
imports, and `stigmer get agents` needs none of them. Checked in a fresh
interpreter, since this test process has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY_PACKAGES = (
    "stigmer.domain",
    "stigmer.pipeline",
    "stigmer.store",
    "stigmer.server",
    "stigmer.consistency",
    "stigmer.worker",
    "stigmer.engine.embedded",
    "stigmer.engine.temporal_engine",
    "openai",
    "anthropic",
    "mcp",
    "temporalio",
    "psycopg",
    "httpx2",
    "xllamacpp",
)


def test_importing_the_cli_loads_no_server_code_and_no_model_tool_or_database_sdk() -> None:
    program = (
        "import json, sys, stigmer.cli.main\n"
        f"heavy = {HEAVY_PACKAGES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if any(m == p or m.startswith(p + '.') for p in heavy))))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == []
