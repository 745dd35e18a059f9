"""Channels from settings: each configured adapter built by its registered factory, wired to
the hub through a bridge, an outbox worker and a supervising runner (docs/channels.md)."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack

import pluggy

from personae.channels.bridge import ChannelBridge, ChannelPolicy
from personae.channels.delivery import ReplyStreamer
from personae.channels.identity import Identities
from personae.channels.outbox import OutboxPolicy, OutboxWorker, utc_now
from personae.channels.runner import ChannelRunner, ChannelSet
from personae.channels.supervision import ReconnectPolicy
from personae.core.catalog import CharacterCatalog
from personae.core.hub import ConversationHub
from personae.errors import ConfigurationError
from personae.plugins.specs import ChannelConfig, ChannelFactory
from personae.settings import ChannelReconnectSettings, ChannelSettings, Settings
from personae.storage.sqlite.channel_directory import SqliteChannelDirectory
from personae.storage.sqlite.channel_outbox import SqliteChannelOutbox
from personae.storage.sqlite.database import SqliteDatabase


def channel_factories(manager: pluggy.PluginManager) -> dict[str, ChannelFactory]:
    """Every registered channel kind; a kind registered twice is a configuration error."""
    factories: dict[str, ChannelFactory] = {}

    def register(kind: str, factory: ChannelFactory) -> None:
        if kind in factories:
            raise ConfigurationError(f"channel kind {kind!r} is registered twice", kind=kind)
        factories[kind] = factory

    manager.hook.register_channels(register=register)
    return factories


def _from_env(name: str, variable: str | None, what: str) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise ConfigurationError(f"channel {name}: {what} names {variable}, which is not set")
    return value


def channel_config(name: str, channel: ChannelSettings) -> ChannelConfig:
    return ChannelConfig(
        name=name,
        kind=channel.kind,
        token=_from_env(name, channel.token_env, "token_env"),
        secret=_from_env(name, channel.secret_env, "secret_env"),
        options=dict(channel.options),
    )


def _reconnect(found: ChannelReconnectSettings) -> ReconnectPolicy:
    return ReconnectPolicy(
        initial_s=found.initial_s,
        max_s=found.max_s,
        max_attempts=found.max_attempts,
        window_s=found.window_s,
    )


async def open_channels(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    hub: ConversationHub,
    catalog: CharacterCatalog,
    plugins: pluggy.PluginManager,
    database: SqliteDatabase,
) -> ChannelSet | None:
    """Start the enabled channels on ``stack`` (stopped when it closes); None when none is
    configured."""
    section = settings.channels
    enabled = {name: c for name, c in section.adapters.items() if c.enabled}
    if not enabled:
        return None
    factories = channel_factories(plugins)
    for name, configured in enabled.items():
        if configured.kind not in factories:
            known = ", ".join(sorted(factories))
            raise ConfigurationError(
                f"channel {name}: unknown kind {configured.kind!r}; known: {known}", channel=name
            )
    outbox = await stack.enter_async_context(SqliteChannelOutbox(database))
    directory = await stack.enter_async_context(SqliteChannelDirectory(database))
    identities = Identities(directory, code_ttl_s=section.link_code_ttl_s, now=utc_now)
    policy = OutboxPolicy(
        max_attempts=section.outbox.max_attempts,
        backoff_initial_s=section.outbox.backoff_initial_s,
        backoff_max_s=section.outbox.backoff_max_s,
        breaker_failures=section.outbox.breaker_failures,
        breaker_reset_s=section.outbox.breaker_reset_s,
    )
    runners: dict[str, ChannelRunner] = {}
    for name, settings_of in enabled.items():
        channel = factories[settings_of.kind](channel_config(name, settings_of))
        worker = OutboxWorker(channel, outbox, policy)
        bridge = ChannelBridge(
            channel=channel,
            hub=hub,
            catalog=catalog,
            directory=directory,
            identities=identities,
            worker=worker,
            streamer=ReplyStreamer(channel, worker),
            policy=ChannelPolicy(
                default_character=settings_of.default_character,
                bindings=dict(settings_of.chats),
                scope=settings_of.conversation_scope or section.conversation_scope,
            ),
        )
        runners[name] = ChannelRunner(
            bridge,
            _reconnect(settings_of.reconnect or section.reconnect),
            max_handlers=section.max_handlers,
        )
    channels = ChannelSet(runners, identities, grace_s=settings.realtime.shutdown_grace_s)
    return await stack.enter_async_context(channels)
