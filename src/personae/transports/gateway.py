"""What the transports need from the running server, handed over by the composition root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import Request

from personae.core.admission import Admission
from personae.core.catalog import CharacterCatalog, CharacterVersion
from personae.core.experiments.admin import ExperimentAdmin
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
from personae.core.replay import Replays
from personae.core.service import ChatService
from personae.core.turn_record import TurnRecords
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


class MediaFile(Protocol):
    @property
    def data(self) -> bytes: ...
    @property
    def media_type(self) -> str: ...
    @property
    def tag(self) -> str:  # changes when the content does (an ETag)
        ...
    @property
    def filename(self) -> str | None: ...


class CharacterMedia(Protocol):
    async def avatar(self, character_id: str) -> MediaFile:
        """A small picture of the character. Raises ``CharacterNotFound``."""
        ...

    async def export(self, character_id: str, fmt: str) -> MediaFile:
        """The character's file in card format ``fmt``. Raises ``CharacterNotFound`` and
        ``InvalidInput``."""
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
    admission: Admission  # the process's bounds on turns; HTTP and MCP take slots here too
    hub: ConversationHub | None = None
    ws_limits: WsLimits = field(default_factory=WsLimits)
    connections: set[Any] = field(default_factory=set)  # open WebSocket connections
    metrics: MetricsExposition | None = None  # None: /metrics is off
    security: SecurityPorts | None = None  # None: no rate limits, no admin API
    uploads: CharacterUploads | None = None  # None: no POST /api/characters
    media: CharacterMedia | None = None  # None: no avatars or exports
    memory: MemoryStore | None = None  # long-term memory; None: off (nothing to erase)
    experiments: ExperimentAdmin | None = None  # None: no experiments API, no feedback
    turn_records: TurnRecords | None = None  # None: no GET /api/admin/turns/{id}
    replays: Replays | None = None  # None: no POST /api/admin/replays


async def gateway(request: Request) -> Gateway:
    """FastAPI dependency: the gateway the lifespan installed, or 503 while starting.
    ``async`` though it awaits nothing: FastAPI runs a plain ``def`` dependency on a worker
    thread, a hop that cost every request more than the rest of the dependency solving."""
    found = getattr(request.app.state, "gateway", None)
    if not isinstance(found, Gateway):
        raise NotReady("the server is starting")
    return found
