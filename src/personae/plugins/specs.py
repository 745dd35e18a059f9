"""Hook specifications. A plugin is a module or object with ``@hookimpl`` functions named like
these; built-ins register through exactly the same hooks as third parties do.

Modelled on simonw/llm: each hook receives a ``register`` callback, so a plugin can register any
number of things, and registration order is plugin load order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pluggy

from personae.core.ports import Channel, ChatModel
from personae.core.skills import Skill

PROJECT = "personae"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """Everything a chat-model factory needs to build one backend.

    ``options`` holds kind-specific settings (a model path, thread counts, ...), so that a new
    kind of backend needs no change to the settings schema.
    """

    name: str
    kind: str
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    options: Mapping[str, Any] = field(default_factory=dict)


ChatModelFactory = Callable[[BackendConfig], ChatModel]


class RegisterChatModel(Protocol):
    def __call__(self, kind: str, factory: ChatModelFactory) -> None: ...


class RegisterSkill(Protocol):
    def __call__(self, skill: Skill) -> None: ...


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    """Everything a channel factory needs to build one channel; ``options`` are
    kind-specific. ``token`` and ``secret`` come from the environment, never from files."""

    name: str
    kind: str
    token: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    options: Mapping[str, Any] = field(default_factory=dict)


ChannelFactory = Callable[[ChannelConfig], Channel]


class RegisterChannel(Protocol):
    def __call__(self, kind: str, factory: ChannelFactory) -> None: ...


class PersonaeSpecs:
    @hookspec
    def register_chat_models(self, register: RegisterChatModel) -> None:
        """Register factories for kinds of chat-model backend: ``register("openai", make)``."""

    @hookspec
    def register_skills(self, register: RegisterSkill) -> None:
        """Register skills (``personae.sdk.Skill`` instances): ``register(DiceSkill())``. A
        character uses the ones its ``skills:`` list names."""

    @hookspec
    def register_channels(self, register: RegisterChannel) -> None:
        """Register factories for kinds of chat-platform channel: ``register("telegram",
        make)`` (docs/channels.md)."""
