"""toolkiln's MCP server: transports, the call pipeline, configuration and the CLI."""
