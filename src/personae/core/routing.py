"""Which backend serves a character. The skills-and-routing issue grows this into ordered
rules with fallback chains; today a character's ``model`` hint names a backend, else the
default one serves."""

from __future__ import annotations

from collections.abc import Mapping

from personae.core.characters import Character
from personae.core.ports import ChatModel
from personae.errors import ConfigurationError


class ModelRoutes:
    def __init__(self, backends: Mapping[str, ChatModel], *, default: str) -> None:
        if default not in backends:
            raise ConfigurationError(f"the default backend {default!r} is not configured")
        self._backends = dict(backends)
        self._default = default

    def for_character(self, character: Character) -> ChatModel:
        if character.model and character.model in self._backends:
            return self._backends[character.model]
        return self._backends[self._default]

    @property
    def default(self) -> ChatModel:
        return self._backends[self._default]

    def all(self) -> list[ChatModel]:
        return list(self._backends.values())
