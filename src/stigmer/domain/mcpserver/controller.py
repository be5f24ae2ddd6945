"""McpServers: tool servers that agents reference by slug."""

from __future__ import annotations

from stigmer.domain.resource_controller import WritableResourceController
from stigmer.resources.kinds import MCP_SERVER


class McpServerController(WritableResourceController):
    kind = MCP_SERVER
