"""Backends and routes from settings: which models exist, and the chains that serve turns."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pluggy

from personae.channels import plugin as channels_plugin
from personae.core.ports import ChatModel
from personae.core.routing import ModelRoutes, RouteRule
from personae.core.skill_stage import SkillStage
from personae.core.skills import SkillRunner
from personae.errors import ConfigurationError
from personae.llm import plugin as llm_plugin
from personae.llm.cache import ResponseCache
from personae.llm.guard import BackendLimits
from personae.llm.llamacpp import LlamaCppChatModel
from personae.llm.packaged import packaged_model_path
from personae.llm.pool import BackendPool
from personae.llm.retry import RetryPolicy
from personae.plugins.manager import chat_model_factories, make_plugin_manager, skill_registry
from personae.plugins.specs import BackendConfig
from personae.settings import BackendSettings, GuardSettings, Settings
from personae.skills import plugin as skills_plugin

BUILTIN_PLUGINS = (llm_plugin, skills_plugin, channels_plugin)


def default_backend_name(settings: Settings) -> str:
    """The name of the ``llm:`` section's backend: its kind (``llamacpp`` or ``openai``)."""
    llm = settings.llm
    return llm.kind if llm.kind != "auto" else ("openai" if llm.base_url else "llamacpp")


def default_chain(settings: Settings) -> list[str]:
    return list(settings.routes.default) or [default_backend_name(settings)]


async def default_backend_config(settings: Settings) -> BackendConfig:
    llm = settings.llm
    kind = default_backend_name(settings)
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


async def declared_backend_config(
    settings: Settings, name: str, backend: BackendSettings
) -> BackendConfig:
    """The config of one entry of ``backends:``."""
    options = dict(backend.options)
    if backend.kind == "llamacpp" and "model_path" not in options:
        options["model_path"] = str(await asyncio.to_thread(packaged_model_path, settings.data_dir))
    if backend.context_window is not None:
        options.setdefault("context_window", backend.context_window)
    return BackendConfig(
        name=name,
        kind=backend.kind,
        model=backend.model,
        base_url=backend.base_url,
        api_key=backend.api_key.get_secret_value() if backend.api_key else None,
        timeout_s=backend.timeout_s,
        connect_timeout_s=backend.connect_timeout_s,
        options=options,
    )


async def backend_configs(settings: Settings) -> list[BackendConfig]:
    """Every backend to build, the default chain's primary first. The ``llm:`` backend is
    built while a route can reach it (always, unless ``routes.default`` is set) and no
    declared backend has taken its name."""
    legacy = default_backend_name(settings)
    routes = settings.routes
    named = {*routes.default, *(name for rule in routes.rules for name in rule.chain)}
    configs = []
    if legacy not in settings.backends and (not routes.default or legacy in named):
        configs.append(await default_backend_config(settings))
    for name, backend in settings.backends.items():
        configs.append(await declared_backend_config(settings, name, backend))
    primary = default_chain(settings)[0]
    return sorted(configs, key=lambda config: config.name != primary)


def load_plugins() -> pluggy.PluginManager:
    """Built-ins and entry-point plugins, loaded once per runtime and shared by every hook."""
    return make_plugin_manager(BUILTIN_PLUGINS)


async def build_backends(
    settings: Settings, plugins: pluggy.PluginManager | None = None
) -> dict[str, ChatModel]:
    factories = chat_model_factories(plugins or load_plugins())
    backends: dict[str, ChatModel] = {}
    for config in await backend_configs(settings):
        if config.kind not in factories:
            known = ", ".join(sorted(factories))
            raise ConfigurationError(
                f"unknown backend kind {config.kind!r}; known: {known}", backend=config.name
            )
        backends[config.name] = factories[config.kind](config)
    return backends


def build_skills(
    plugins: pluggy.PluginManager | None = None, *, runner: SkillRunner | None = None
) -> SkillStage:
    """Every skill the plugins register (built-ins and entry points); characters pick theirs.
    ``runner``: the timeout and concurrency of ``skills:`` settings (else the defaults)."""
    return SkillStage(skill_registry(plugins or load_plugins()), runner)


def backend_limits(settings: Settings, name: str, model: ChatModel) -> BackendLimits:
    """The router's limits for a backend: its ``backends:`` entry, else the ``llm:`` ones. A
    local model serves one generation at a time unless told otherwise."""
    guard: GuardSettings = settings.backends.get(name) or settings.llm
    concurrency = guard.max_concurrency
    if concurrency is None and isinstance(model, LlamaCppChatModel):
        concurrency = 1
    return BackendLimits(
        first_token_timeout_s=guard.first_token_timeout_s,
        total_timeout_s=guard.total_timeout_s,
        max_concurrency=concurrency,
        failure_threshold=guard.breaker.failure_threshold,
        reset_timeout_s=guard.breaker.reset_timeout_s,
    )


def build_routes(
    settings: Settings, backends: Mapping[str, ChatModel]
) -> tuple[ModelRoutes, BackendPool]:
    """Routes over ``backends`` (from ``build_backends``, or a test's own): every chain gets
    retries, fallbacks, breakers and limits; the pool's ``snapshot()`` is for metrics. Without
    ``routes.default`` the first backend serves by default."""
    routes = settings.routes
    retry = routes.retry
    cache = routes.cache
    pool = BackendPool(
        backends,
        limits={name: backend_limits(settings, name, model) for name, model in backends.items()},
        retry=RetryPolicy(
            retries=retry.retries,
            budget_s=retry.budget_s,
            backoff_initial_s=retry.backoff_initial_s,
            backoff_max_s=retry.backoff_max_s,
        ),
        cache=ResponseCache(max_entries=cache.max_entries, ttl_s=cache.ttl_s)
        if cache.enabled
        else None,
    )
    rules = [
        RouteRule(
            chain=tuple(rule.chain),
            name=rule.name or "",
            characters=frozenset(rule.characters),
            kinds=frozenset(rule.kinds),
            min_prompt_tokens=rule.min_prompt_tokens,
            variants=frozenset(rule.variants),
        )
        for rule in routes.rules
    ]
    default = list(routes.default) or list(backends)[:1]
    model_routes = ModelRoutes(backends, default=default, rules=rules, chain=pool.chain)
    return model_routes, pool
