"""Tool servers for runtime tests: the real MCP test server over stdio."""

from __future__ import annotations

import sys
from pathlib import Path

import stigmer
from stigmer.runtime.contract import StdioServer, ToolServer


def stdio_tools(
    name: str = "tools", *, enabled: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> ToolServer:
    """The MCP test server (add, echo, repeat, read_env, fail, crash, sleep) as a stdio tool
    server, run from the same source as the tests (a tool server's environment is not the
    test's, so PYTHONPATH is passed on)."""
    source = str(Path(stigmer.__file__).resolve().parents[1])
    return ToolServer(
        name=name,
        transport=StdioServer(
            command=sys.executable,
            args=("-m", "stigmer.testing.mcp_server"),
            env={"PYTHONPATH": source, **(env or {})},
        ),
        enabled_tools=enabled,
    )
