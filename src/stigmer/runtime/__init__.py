"""The agent runtime: model providers, MCP tools and the agent loop."""
