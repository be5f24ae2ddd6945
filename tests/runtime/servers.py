"""Tool servers and ports for runtime tests: the real MCP test server over stdio."""

from __future__ import annotations

import socket
import sys

from stigmer.runtime.contract import StdioServer, ToolServer


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


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
