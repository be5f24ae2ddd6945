"""Tool servers for runtime tests: the real MCP test server over stdio.

`free_port` is stigmer.local_ports.free_local_port under its former name,
for the one module (test_providers.py) that still imports it from here;
new code imports free_local_port from stigmer.local_ports.
"""

from __future__ import annotations

import sys

from stigmer.local_ports import free_local_port as free_port
from stigmer.runtime.contract import StdioServer, ToolServer

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
