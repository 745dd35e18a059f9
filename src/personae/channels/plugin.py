"""The built-in channels, registered through the same hook a third-party plugin uses.

Each adapter's module (and its platform library, from the ``channels`` extra) is imported only
when a channel of that kind is configured: a deployment without channels needs none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from personae.core.ports import Channel
from personae.errors import ConfigurationError
from personae.plugins.specs import ChannelConfig, RegisterChannel, hookimpl

_BUILTIN = {
    "webhook": ("personae.channels.webhook", "WebhookChannel"),
    "mqtt": ("personae.channels.mqtt", "MqttChannel"),
    "telegram": ("personae.channels.telegram", "TelegramChannel"),
    "slack": ("personae.channels.slack", "SlackChannel"),
    "discord": ("personae.channels.discord", "DiscordChannel"),
}


def _lazy(kind: str, module: str, name: str) -> Callable[[ChannelConfig], Channel]:
    def build(config: ChannelConfig) -> Channel:
        try:
            adapter = getattr(importlib.import_module(module), name)
        except ImportError as exc:
            raise ConfigurationError(
                f"channel {config.name}: the {kind} adapter needs the 'channels' extra"
                f" (pip install 'personae[channels]'): {exc}"
            ) from exc
        channel: Channel = adapter.from_config(config)
        return channel

    return build


@hookimpl
def register_channels(register: RegisterChannel) -> None:
    for kind, (module, name) in _BUILTIN.items():
        register(kind, _lazy(kind, module, name))
