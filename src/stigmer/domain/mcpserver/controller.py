"""McpServers: tool servers that agents reference by slug."""

from __future__ import annotations

from stigmer.domain.resource_controller import ResourceController
from stigmer.resources.kinds import MCP_SERVER


class McpServerController(ResourceController):
    kind = MCP_SERVER
