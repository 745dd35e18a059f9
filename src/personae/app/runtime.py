"""The composition root: the only package that names concrete adapters and wires them.

``open_runtime`` opens everything a server needs (storage, backends, characters) as one async
context; ``build_app`` puts the HTTP transport on top of it, with the runtime as its lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import structlog
from fastapi import FastAPI

from personae.app.backends import build_backends, build_routes
from personae.characters.loader import load_characters_dir
from personae.coordination.local import LocalConversationLock, LocalEventBus
from personae.core.admission import Admission
from personae.core.catalog import CharacterCatalog
from personae.core.hub import ConversationHub
from personae.core.ports import ChatModel, ConversationStore
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.sessions import SessionRegistry
from personae.core.types import GenerationParams
from personae.llm.pool import BackendPool
from personae.security.auth import StaticKeyAuthenticator
from personae.settings import Settings
from personae.storage.sqlite import SqliteConversationStore
from personae.transports.gateway import Gateway
from personae.transports.http import create_http_app
from personae.transports.ws_connection import WsLimits

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    catalog: CharacterCatalog
    store: ConversationStore
    routes: ModelRoutes
    backends: BackendPool  # breaker states and per-backend counters, for metrics
    service: ChatService
    hub: ConversationHub
    authenticator: StaticKeyAuthenticator

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await self.store.get_user("readiness-probe")
            checks["storage"] = "ok"
        except Exception as exc:  # any failure means not ready; say which
            checks["storage"] = f"error: {type(exc).__name__}"
        checks["characters"] = "ok" if len(self.catalog) else "error: no characters loaded"
        return checks

    def gateway(self) -> Gateway:
        return Gateway(
            service=self.service,
            catalog=self.catalog,
            store=self.store,
            authenticator=self.authenticator,
            readiness=self.readiness,
            hub=self.hub,
            ws_limits=ws_limits(self.settings),
        )


def load_catalog(settings: Settings) -> CharacterCatalog:
    report = load_characters_dir(settings.characters_dir)
    for error in report.errors:
        log.error("character not loaded", source=error.source, error=error.message)
    log.info("characters loaded", count=len(report.characters), folder=str(settings.characters_dir))
    return CharacterCatalog(report.characters)


def turn_settings(settings: Settings) -> TurnSettings:
    gen = settings.generation
    return TurnSettings(
        max_message_chars=settings.limits.max_message_chars,
        history_messages=settings.limits.history_messages,
        context_tokens=settings.llm.context_tokens,
        generation=GenerationParams(
            max_tokens=gen.max_tokens, temperature=gen.temperature, top_p=gen.top_p, seed=gen.seed
        ),
        user_name=settings.user_name,
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, backends: Mapping[str, ChatModel] | None = None
) -> AsyncIterator[Runtime]:
    """Open storage and backends, load characters; close everything on exit. ``backends``
    replaces the configured ones (tests pass a ``FakeChatModel``)."""
    catalog = load_catalog(settings)
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(SqliteConversationStore(settings.database_path))
        models = dict(backends) if backends is not None else await build_backends(settings)
        for model in models.values():
            await stack.enter_async_context(model)
        routes, pool = build_routes(settings, models)
        service = ChatService(
            catalog=catalog,
            store=store,
            routes=routes,
            lock=LocalConversationLock(),
            settings=turn_settings(settings),
        )
        # Runs before the store closes (exit order is reversed): late partial-reply writes
        # of cancelled turns land first.
        stack.push_async_callback(service.drain)
        realtime = settings.realtime
        hub = ConversationHub(
            service=service,
            store=store,
            bus=await stack.enter_async_context(LocalEventBus()),
            lock=LocalConversationLock(),
            admission=Admission(
                max_concurrent=realtime.max_concurrent_turns,
                max_queued=realtime.max_queued_turns,
                enqueue_timeout_s=realtime.enqueue_timeout_s,
                retry_after_s=realtime.retry_after_s,
            ),
            sessions=SessionRegistry(idle_expiry_s=realtime.session_idle_expiry_s),
            reject_when_busy=realtime.busy_policy == "reject",
        )
        hub.start(sweep_interval_s=max(1.0, realtime.session_idle_expiry_s / 10))
        # Running turns finish (or end with an error event) before anything closes.
        stack.push_async_callback(hub.close, grace_s=realtime.shutdown_grace_s)
        yield Runtime(
            settings=settings,
            catalog=catalog,
            store=store,
            routes=routes,
            backends=pool,
            service=service,
            hub=hub,
            authenticator=StaticKeyAuthenticator(k.get_secret_value() for k in settings.api_keys),
        )


def ws_limits(settings: Settings) -> WsLimits:
    realtime = settings.realtime
    return WsLimits(
        max_frame_bytes=realtime.max_frame_bytes,
        heartbeat_interval_s=realtime.heartbeat_interval_s,
        idle_timeout_s=realtime.idle_timeout_s,
        send_timeout_s=realtime.send_timeout_s,
    )


def build_app(settings: Settings, *, backends: Mapping[str, ChatModel] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, backends=backends) as runtime:
            app.state.gateway = runtime.gateway()
            try:
                yield
            finally:
                del app.state.gateway

    return create_http_app(lifespan=lifespan, max_body_bytes=settings.limits.max_body_bytes)
