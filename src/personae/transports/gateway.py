"""What the transports need from the running server, handed over by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import Request

from personae.core.catalog import CharacterCatalog, CharacterVersion
from personae.core.hub import ConversationHub
from personae.core.ports import (
    ApiKeys,
    AuditLog,
    Authenticator,
    ConversationStore,
    MemoryStore,
    RequestGate,
    UserData,
)
from personae.core.service import ChatService
from personae.errors import PersonaeError
from personae.transports.ws_limits import WsLimits

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]
MetricsExposition = Callable[[], Awaitable[tuple[bytes, str]]]  # /metrics body, content type


class NotReady(PersonaeError):
    code = "not_ready"
    retryable = True


class CharacterUploads(Protocol):
    async def import_file(self, data: bytes, filename: str, *, force: bool) -> CharacterVersion:
        """Validate, store and serve a character file; its name's suffix says what it is.
        Raises ``CharacterDefinitionError`` (not a character) or ``Conflict`` (its id is
        taken and ``force`` is off)."""
        ...


@dataclass(frozen=True, slots=True)
class SecurityPorts:
    """Keys, the audit log, users' data and the request gate (docs/operations.md, "Security")."""

    keys: ApiKeys
    audit: AuditLog
    users: UserData
    gate: RequestGate


@dataclass(frozen=True, slots=True)
class Gateway:
    service: ChatService
    catalog: CharacterCatalog
    store: ConversationStore
    authenticator: Authenticator
    readiness: ReadinessCheck
    hub: ConversationHub | None = None
    ws_limits: WsLimits = field(default_factory=WsLimits)
    connections: set[Any] = field(default_factory=set)  # open WebSocket connections
    metrics: MetricsExposition | None = None  # None: /metrics is off
    security: SecurityPorts | None = None  # None: no rate limits, no admin API
    uploads: CharacterUploads | None = None  # None: no POST /api/characters
    memory: MemoryStore | None = None  # long-term memory; None: off (nothing to erase)


def gateway(request: Request) -> Gateway:
    """FastAPI dependency: the gateway the lifespan installed, or 503 while starting."""
    found = getattr(request.app.state, "gateway", None)
    if not isinstance(found, Gateway):
        raise NotReady("the server is starting")
    return found
