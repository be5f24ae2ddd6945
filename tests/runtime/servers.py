"""Tool servers and ports for runtime tests: the real MCP test server over stdio."""

from __future__ import annotations

import sys

from stigmer.runtime.contract import StdioServer, ToolServer
from stigmer.testing.ports import free_port

__all__ = ["free_port", "stdio_tools"]


def stdio_tools(
    name: str = "tools", *, enabled: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> ToolServer:
    """The MCP test server (add, echo, read_env, fail, crash, sleep) as a stdio tool server."""
    return ToolServer(
        name=name,
        transport=StdioServer(
            command=sys.executable, args=("-m", "stigmer.testing.mcp_server"), env=env or {}
        ),
        enabled_tools=enabled,
    )
