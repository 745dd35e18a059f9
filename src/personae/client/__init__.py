"""A Python client for Personae's WebSocket protocol (docs/protocol.md)."""

from personae.client.async_client import ClientError, PersonaeClient, Reply
from personae.client.sync_client import SyncPersonaeClient

__all__ = ["ClientError", "PersonaeClient", "Reply", "SyncPersonaeClient"]
