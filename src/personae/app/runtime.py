"""The composition root: the only package that names concrete adapters and wires them.

``open_runtime`` opens everything a server needs (storage, backends, characters) as one async
context; ``build_app`` puts the HTTP transport on top of it, with the runtime as its lifespan.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.routing import Route

from personae.app.backends import build_backends, build_routes, build_skills, load_plugins
from personae.app.background import (
    SupervisedWatcher,
    backend_checks,
    end_orphan_turns,
    start_retention,
    sweep_sessions,
)
from personae.app.channels import open_channels
from personae.app.character_media import FolderMedia
from personae.app.coordination import Coordination, open_coordination
from personae.app.database import open_stores, sqlite_database
from personae.app.experiments import open_experiments
from personae.app.mcp import mcp_checks, mcp_endpoint, open_mcp_skills, serving_mcp
from personae.app.memory import midterm_model, open_memory
from personae.app.node_sync import start_node_sync
from personae.app.observability import build_observability, watch_live_state
from personae.app.replay import ServerReplays, open_turn_records, server_replays
from personae.app.security import open_security
from personae.app.skills import Reminders, open_runtime_skills, skill_runner
from personae.app.uploads import FolderUploads
from personae.characters.lorebooks import LorebookShelf
from personae.characters.reload import CharacterFolder
from personae.core.admission import Admission
from personae.core.catalog import CharacterCatalog
from personae.core.channels import ChannelGateway
from personae.core.experiments.admin import ExperimentAdmin
from personae.core.hub import ConversationHub
from personae.core.memory.capture import memories_of
from personae.core.moderation import WordFilter
from personae.core.observe import ObserverFanout
from personae.core.pii import Redactor
from personae.core.ports import ChatModel, ConversationStore, MemoryStore
from personae.core.routing import ModelRoutes
from personae.core.safety import ContentPolicy
from personae.core.service import ChatService, TurnSettings
from personae.core.sessions import SessionRegistry
from personae.core.supervisor import Supervisor
from personae.core.turn_record import TurnRecords
from personae.core.types import GenerationParams
from personae.errors import ConfigurationError
from personae.llm.pool import BackendPool
from personae.mcp.client import McpConnection
from personae.mcp.http import PATH as MCP_PATH
from personae.observability.metrics import Metrics
from personae.observability.tracing import Tracing, TracingMiddleware
from personae.security.auth import KeyAuthenticator
from personae.settings import Settings
from personae.transports.gateway import Gateway, SecurityPorts
from personae.transports.http import create_http_app
from personae.transports.websocket import beat_forever
from personae.transports.ws_limits import WsLimits

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
    authenticator: KeyAuthenticator
    watcher: SupervisedWatcher | None = None  # hot reload of the characters folder
    metrics: Metrics | None = None  # None: /metrics is off
    connections: set[Any] = field(default_factory=set)  # open WebSocket connections
    security: SecurityPorts | None = None  # keys, audit, users' data, rate limits
    supervisor: Supervisor = field(default_factory=Supervisor)  # the background tasks
    channels: ChannelGateway | None = None  # chat platforms (docs/channels.md); None: none
    uploads: FolderUploads | None = None  # characters uploaded over the API
    media: FolderMedia | None = None  # avatars and exports of the folder's characters
    memory: MemoryStore | None = None  # long-term memory (docs/memory.md); None: off
    experiments: ExperimentAdmin | None = None  # A/B tests and gray releases
    reminders: Reminders | None = None  # the reminders skill's store and dispatcher
    turn_records: TurnRecords | None = None  # sampled turns, for trace (docs/replay.md)
    replays: ServerReplays | None = None  # recorded conversations re-run with overrides
    mcp_servers: tuple[McpConnection, ...] = ()  # MCP servers whose tools are skills
    coordination: Coordination | None = None  # None: in-process only (tests' small runtimes)

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            # Bounded: a database that is away must not make the probe itself time out.
            await asyncio.wait_for(self.store.get_user("readiness-probe"), timeout=2.0)
            checks["storage"] = "ok"
        except Exception as exc:  # any failure means not ready; say which
            checks["storage"] = f"error: {type(exc).__name__}"
        checks["characters"] = "ok" if len(self.catalog) else "error: no characters loaded"
        # Redis away: turns may still run, but not across nodes; say so without failing.
        checks["coordination"] = (
            await self.coordination.check() if self.coordination is not None else "ok"
        )
        checks.update(backend_checks(self.backends))
        if self.channels is not None:  # a platform down is reported, not unready: the rest serves
            for name, health in sorted(self.channels.health().items()):
                checks[f"channel:{name}"] = "ok" if health == "up" else f"warning: {health}"
        for name, status in sorted(self.supervisor.status().items()):
            checks[f"task:{name}"] = status.describe()
        checks.update(mcp_checks(self.mcp_servers))
        return checks

    def gateway(self) -> Gateway:
        return Gateway(
            service=self.service,
            catalog=self.catalog,
            store=self.store,
            authenticator=self.authenticator,
            readiness=self.readiness,
            hub=self.hub,
            admission=self.hub.admission,
            ws_limits=ws_limits(self.settings),
            connections=self.connections,
            metrics=self.metrics.render if self.metrics is not None else None,
            security=self.security,
            uploads=self.uploads,
            media=self.media,
            memory=self.memory,
            experiments=self.experiments,
            turn_records=self.turn_records,
            replays=self.replays,
        )


def load_characters(settings: Settings) -> CharacterFolder:
    """Read the characters folder into a new catalog; broken files are logged and skipped."""
    folder = CharacterFolder(
        settings.characters_dir,
        CharacterCatalog(policy=settings.characters_reload),
        lorebooks=LorebookShelf(settings.lorebooks_dir),  # standalone books, by name
    )
    folder.apply(folder.rescan(with_lorebooks=True), announce=False)
    log.info(
        "characters loaded",
        count=len(folder.catalog),
        invalid=len(folder.broken),
        folder=str(settings.characters_dir),
    )
    return folder


def load_catalog(settings: Settings) -> CharacterCatalog:
    return load_characters(settings).catalog


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
        log_content=settings.log_content,
        group_max_replies=settings.limits.group_max_replies,
        max_tool_rounds=settings.skills.tool_rounds,
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    backends: Mapping[str, ChatModel] | None = None,
    tracing: Tracing | None = None,
) -> AsyncIterator[Runtime]:
    """Open storage and backends, load characters; close everything on exit. ``backends``
    replaces the configured ones (tests pass a ``FakeChatModel``); ``tracing`` is the
    caller's (``build_app``'s, or a test's), else made here when ``tracing.enabled``."""
    characters = load_characters(settings)
    catalog = characters.catalog
    async with AsyncExitStack() as stack:
        # With memory on, each message is stored with its memory items in one transaction.
        remember = memories_of if settings.memory.enabled else None
        # One database for every store, entered first so that it closes last.
        database = await stack.enter_async_context(sqlite_database(settings))
        # Conversations and memory on the configured backend (SQLite, or PostgreSQL shared
        # by every node); the other stores stay in the node's SQLite database.
        stores = await open_stores(settings, stack, database, remember=remember)
        store = stores.conversations
        # Locks, the event bus and in-flight turns: this process's, or shared over Redis.
        # Entered before the hub so that it closes after the hub's last turn.
        coordination = await open_coordination(settings.coordination, stack)
        plugins = load_plugins()
        # MCP servers' tools join the skills through the same hook (before the registry is read).
        mcp_servers = await open_mcp_skills(settings.mcp, stack, plugins)
        models = dict(backends) if backends is not None else await build_backends(settings, plugins)
        for model in models.values():
            await stack.enter_async_context(model)
        routes, pool = build_routes(settings, models)
        obs = build_observability(settings)
        supervisor = Supervisor()
        memory = await open_memory(
            settings,
            stack,
            supervisor,
            memory_store=stores.memory,
            conversations=store,
            model=midterm_model(settings, models, routes.default),
            cross_character=lambda c: c in catalog and catalog.get(c).memory.cross_character,
        )
        # Reminders and memory commands: skills over the stores, registered like plugins'.
        reminders = await open_runtime_skills(
            settings,
            stack,
            plugins,
            database=database,
            conversations=store,
            memory=memory.store if memory is not None else None,
            embedder=memory.embedder if memory is not None else None,
        )
        if tracing is None and settings.tracing.enabled:
            tracing = Tracing.from_environment()
            stack.push_async_callback(asyncio.to_thread, tracing.shutdown)
        security = await open_security(
            settings,
            stack,
            metrics_observer=obs.observer,
            stores=stores,
            rate_storage=coordination.rate_storage,
        )
        experiments = await open_experiments(
            settings,
            stack,
            database=database,
            catalog=catalog,
            observer=obs.observer,
            supervisor=supervisor,
        )
        observer = ObserverFanout([obs.observer, security.observer, experiments.recorder])
        records, recorder = await open_turn_records(settings, stack, database)
        service = ChatService(
            catalog=catalog,
            store=store,
            routes=routes,
            lock=coordination.service_lock,
            settings=turn_settings(settings),
            observer=observer,
            skills=build_skills(plugins, runner=skill_runner(settings)),
            content=content_policy(settings),
            tracer=tracing.tracer if tracing is not None else None,
            memory=memory.stage if memory is not None else None,
            experiments=experiments.live,
            recorder=recorder,
        )
        # Runs before the store closes (exit order is reversed): late partial-reply writes
        # of cancelled turns land first.
        stack.push_async_callback(service.drain)
        realtime = settings.realtime
        hub = ConversationHub(
            service=service,
            store=store,
            bus=coordination.bus,
            lock=coordination.hub_lock,
            admission=Admission(
                max_concurrent=realtime.max_concurrent_turns,
                max_queued=realtime.max_queued_turns,
                enqueue_timeout_s=realtime.enqueue_timeout_s,
                retry_after_s=realtime.retry_after_s,
                observer=obs.observer,
            ),  # one per process: HTTP and MCP turns take their slots here too (hub.admission)
            sessions=SessionRegistry(idle_expiry_s=realtime.session_idle_expiry_s),
            reject_when_busy=realtime.busy_policy == "reject",
            observer=obs.observer,
            inflight=coordination.inflight,
            node=coordination.node,
        )
        if memory is not None and memory.midterm is not None:  # summaries at session expiry
            hub.sessions.on_expire(memory.midterm.session_expired)
        sweep_s = max(1.0, realtime.session_idle_expiry_s / 10)
        supervisor.start("session-sweeper", lambda: sweep_sessions(hub.sessions, sweep_s))
        if coordination.shared:  # turns of nodes that died end here, with an error event
            orphan_s = settings.coordination.visibility_timeout_s / 3
            supervisor.start("orphan-turns", lambda: end_orphan_turns(hub, orphan_s))
            # Characters, experiments and API keys changed on one node reach every other.
            start_node_sync(
                coordination,
                supervisor,
                characters=characters,
                experiments=experiments.admin,
                keys=security.registry,
            )
        # Running turns finish (or end with an error event) before anything closes.
        stack.push_async_callback(hub.close, grace_s=realtime.shutdown_grace_s)
        watcher = SupervisedWatcher(characters)  # also what the metrics read of characters
        # Entered after the hub, so channels stop first: their replies in flight finish.
        channels = await open_channels(
            settings, stack, hub=hub, catalog=catalog, plugins=plugins, database=database
        )
        # Due reminders (overdue ones at once, after a restart) into conversations and chats.
        reminders.start(supervisor, hub=hub, conversations=store, channels=channels)
        watch_live_state(
            obs,
            pool=pool,
            hub=hub,
            settings=settings,
            supervisor=supervisor,
            characters=watcher,
            channels=channels,
        )
        if settings.watch_characters:
            supervisor.start("character-watcher", watcher.run)
        memory_store = memory.store if memory is not None else None
        await start_retention(
            settings,
            supervisor,
            metrics=obs.metrics,
            memory=memory_store,
            stores=stores,
            turn_records=records,
        )
        # Pushed last, so it stops first: no reload or sweep while the rest shuts down.
        stack.push_async_callback(supervisor.close)
        yield Runtime(
            settings=settings,
            catalog=catalog,
            store=store,
            routes=routes,
            backends=pool,
            service=service,
            hub=hub,
            authenticator=security.authenticator,
            watcher=watcher if settings.watch_characters else None,
            metrics=obs.metrics,
            connections=obs.connections,
            security=security.ports,
            channels=channels,
            uploads=FolderUploads(characters),
            media=FolderMedia(characters.path, catalog),
            supervisor=supervisor,
            memory=memory_store,
            reminders=reminders,
            mcp_servers=tuple(mcp_servers),
            coordination=coordination,
            experiments=experiments.admin,
            turn_records=records,
            replays=server_replays(
                settings,
                store=store,
                records=records,
                catalog=catalog,
                routes=routes,
                turn=turn_settings(settings),
                content=content_policy(settings),
                experiments=experiments.live.get,
            ),
        )


def content_policy(settings: Settings) -> ContentPolicy:
    """Blocked words and PII redaction from ``moderation:`` (docs/operations.md)."""
    moderation = settings.moderation
    pii = moderation.pii
    try:
        redactor = Redactor(pii.patterns) if pii.enabled else None
    except re.error as exc:
        raise ConfigurationError(f"moderation.pii.patterns: invalid pattern: {exc}") from exc
    return ContentPolicy(
        WordFilter(moderation.blocked_words.model_dump()),
        redactor,
        exempt_local=pii.exempt_local,
        store_originals=pii.store_originals,
    )


def ws_limits(settings: Settings) -> WsLimits:
    realtime = settings.realtime
    return WsLimits(
        max_frame_bytes=realtime.max_frame_bytes,
        heartbeat_interval_s=realtime.heartbeat_interval_s,
        idle_timeout_s=realtime.idle_timeout_s,
        send_timeout_s=realtime.send_timeout_s,
    )


def build_app(
    settings: Settings,
    *,
    backends: Mapping[str, ChatModel] | None = None,
    tracing: Tracing | None = None,
) -> FastAPI:
    """The app over a runtime; ``tracing`` replaces the one ``tracing.enabled`` makes
    (tests pass one with an in-memory exporter)."""
    owned = tracing is None and settings.tracing.enabled
    if owned:
        tracing = Tracing.from_environment()
    mcp = mcp_endpoint(settings)  # Personae's own MCP tools (docs/mcp.md); None: off

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with open_runtime(settings, backends=backends, tracing=tracing) as runtime:
                app.state.gateway = gateway = runtime.gateway()
                app.state.channels = runtime.channels
                runtime.supervisor.start("heartbeat", lambda: beat_forever(gateway))
                try:
                    async with serving_mcp(mcp, runtime):  # /mcp answers from here on
                        yield
                finally:
                    del app.state.gateway
        finally:
            if owned and tracing is not None:
                await asyncio.to_thread(tracing.shutdown)  # export what is queued

    app = create_http_app(
        lifespan=lifespan,
        max_body_bytes=settings.limits.max_body_bytes,
        max_upload_bytes=settings.limits.max_upload_bytes,
    )
    if mcp is not None:
        app.router.routes.append(Route(MCP_PATH, mcp, include_in_schema=False))  # an ASGI app
    if tracing is not None:
        app.add_middleware(TracingMiddleware, tracing=tracing)  # outermost: sees every request
    return app
