"""MCP both ways (docs/mcp.md): other servers' tools as skills (``client``, ``skills``), and
Personae's characters and memory as an MCP server (``server``, ``http``, ``stdio``).

This package is an adapter: it speaks the official ``mcp`` SDK; ``core`` never imports it.
"""
