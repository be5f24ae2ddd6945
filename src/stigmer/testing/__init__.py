"""Test fixtures that ship with Stigmer: a scripted model, an MCP server, a
server thread or process, and the `stigmer` command in a subprocess."""
