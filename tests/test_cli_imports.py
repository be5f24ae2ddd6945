"""Importing the command line loads neither the server side nor the SDKs of
models, tools, Temporal or PostgreSQL: every `stigmer` command pays for its
imports, and `stigmer get agents` needs none of them. And `stigmer worker`,
which does need the SDKs, still loads nothing of the server side: it reaches
the store only through the server. Checked in a fresh interpreter, since
this test process has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_SIDE = (
    "stigmer.domain",
    "stigmer.pipeline",
    "stigmer.store",
    "stigmer.server",
    "stigmer.consistency",
    "stigmer.engine.embedded",
    "stigmer.engine.temporal_engine",
)
HEAVY_PACKAGES = (
    *SERVER_SIDE,
    "stigmer.worker",
    "openai",
    "anthropic",
    "mcp",
    "temporalio",
    "psycopg",
    "httpx2",
    "xllamacpp",
    # The web console's stack: loaded by `stigmer server` and `stigmer console` only.
    "stigmer.console.app",
    "starlette",
    "uvicorn",
    "jinja2",
)
# What `stigmer worker` imports before it polls Temporal (stigmer.cli.worker
# and stigmer.worker.process), and what it imports later: the model SDKs
# behind the providers, the agent runtime and the tool boxes.
WORKER_MODULES = (
    "stigmer.cli.main",
    "stigmer.cli.worker",
    "stigmer.worker.process",
    "stigmer.runtime.providers",
    "stigmer.runtime.tools",
)


def _loaded_after_importing(modules: tuple[str, ...], packages: tuple[str, ...]) -> list[str]:
    """The modules of `packages` a fresh interpreter holds after importing `modules`."""
    program = (
        "import importlib, json, sys\n"
        f"for module in {modules!r}:\n"
        "    importlib.import_module(module)\n"
        f"packages = {packages!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if any(m == p or m.startswith(p + '.') for p in packages))))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    loaded: list[str] = json.loads(completed.stdout)
    return loaded


def test_importing_the_cli_loads_no_server_code_and_no_model_tool_or_database_sdk() -> None:
    assert _loaded_after_importing(("stigmer.cli.main",), HEAVY_PACKAGES) == []


def test_the_worker_loads_its_sdks_but_nothing_of_the_server_side() -> None:
    loaded = _loaded_after_importing(WORKER_MODULES, (*SERVER_SIDE, "temporalio", "openai", "mcp"))

    assert [module for module in loaded if module.startswith("stigmer.")] == []
    # The worker's SDKs are there: the check looks at the right interpreter.
    assert {"temporalio", "openai", "mcp"} <= set(loaded)
