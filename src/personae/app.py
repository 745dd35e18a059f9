"""The composition root: the only module that names concrete adapters and wires them.

``open_runtime`` opens everything a server needs (storage, backends, characters) as one async
context; ``build_app`` puts the HTTP transport on top of it, with the runtime as its lifespan.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI

from personae.characters.loader import load_characters_dir
from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.ports import ChatModel, ConversationStore
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import GenerationParams
from personae.errors import ConfigurationError
from personae.llm import plugin as llm_plugin
from personae.llm.packaged import packaged_model_path
from personae.plugins.manager import chat_model_factories, make_plugin_manager
from personae.plugins.specs import BackendConfig
from personae.security.auth import StaticKeyAuthenticator
from personae.settings import Settings
from personae.storage.sqlite import SqliteConversationStore
from personae.transports.gateway import Gateway
from personae.transports.http import create_http_app

log = structlog.get_logger(__name__)

BUILTIN_PLUGINS = (llm_plugin,)


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    catalog: CharacterCatalog
    store: ConversationStore
    routes: ModelRoutes
    service: ChatService
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
        )


def load_catalog(settings: Settings) -> CharacterCatalog:
    report = load_characters_dir(settings.characters_dir)
    for error in report.errors:
        log.error("character not loaded", source=error.source, error=error.message)
    log.info("characters loaded", count=len(report.characters), folder=str(settings.characters_dir))
    return CharacterCatalog(report.characters)


async def default_backend_config(settings: Settings) -> BackendConfig:
    llm = settings.llm
    kind = llm.kind if llm.kind != "auto" else ("openai" if llm.base_url else "llamacpp")
    options: dict[str, Any] = {}
    if kind == "llamacpp":
        path = llm.model_path or await asyncio.to_thread(packaged_model_path, settings.data_dir)
        options = {
            "model_path": str(path),
            "n_ctx": llm.n_ctx,
            "prompt_format": llm.prompt_format,
            "seed": settings.generation.seed,
        }
        if llm.n_threads:
            options["n_threads"] = llm.n_threads
    return BackendConfig(
        name=kind,
        kind=kind,
        model=llm.model,
        base_url=llm.base_url,
        api_key=llm.api_key.get_secret_value() if llm.api_key else None,
        timeout_s=llm.timeout_s,
        connect_timeout_s=llm.connect_timeout_s,
        options=options,
    )


async def build_backends(settings: Settings) -> dict[str, ChatModel]:
    factories = chat_model_factories(make_plugin_manager(BUILTIN_PLUGINS))
    config = await default_backend_config(settings)
    if config.kind not in factories:
        known = ", ".join(sorted(factories))
        raise ConfigurationError(f"unknown backend kind {config.kind!r}; known: {known}")
    return {config.name: factories[config.kind](config)}


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
        routes = ModelRoutes(models, default=next(iter(models)))
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
        yield Runtime(
            settings=settings,
            catalog=catalog,
            store=store,
            routes=routes,
            service=service,
            authenticator=StaticKeyAuthenticator(k.get_secret_value() for k in settings.api_keys),
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
