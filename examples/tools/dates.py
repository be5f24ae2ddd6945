"""A tiny MCP tool server for the quickstart: date arithmetic a model should not guess.

Language models are poor at counting days across months and years, so an agent
that answers "how many days between ..." needs a tool. Stigmer starts this file
over stdio for each execution of an agent that lists it (examples/quickstart.yaml):

    python examples/tools/dates.py

Any MCP server works the same way; this one is written with the official `mcp`
SDK, which Stigmer already depends on.
"""

from __future__ import annotations

from datetime import date

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def days_between(start: str, end: str) -> int:
    """Return the number of days from the start date to the end date (dates as YYYY-MM-DD)."""
    try:
        return (date.fromisoformat(end) - date.fromisoformat(start)).days
    except ValueError as error:
        # A ToolError's text reaches the model, which can correct its arguments.
        raise ToolError(f"dates must look like 2025-01-31: {error}") from None


if __name__ == "__main__":
    server: MCPServer[object] = MCPServer("dates", log_level="WARNING")
    server.add_tool(days_between)
    server.run("stdio")
