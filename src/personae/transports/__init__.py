"""Transports: HTTP (OpenAI-compatible API, REST, health) and, later, WebSocket."""
