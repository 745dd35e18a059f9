"""The characters being served, by id."""

from __future__ import annotations

from collections.abc import Iterable

from personae.core.characters import Character
from personae.errors import CharacterNotFound, ConfigurationError


class CharacterCatalog:
    """An in-memory index of characters. Loading them from files is an adapter's job."""

    def __init__(self, characters: Iterable[Character] = ()) -> None:
        self._by_id: dict[str, Character] = {}
        self.replace(characters)

    def replace(self, characters: Iterable[Character]) -> None:
        by_id: dict[str, Character] = {}
        for character in characters:
            if character.id in by_id:
                raise ConfigurationError(
                    f"two characters share the id {character.id!r}", character_id=character.id
                )
            by_id[character.id] = character
        self._by_id = by_id

    def get(self, character_id: str) -> Character:
        try:
            return self._by_id[character_id]
        except KeyError:
            raise CharacterNotFound(character_id) from None

    def __contains__(self, character_id: object) -> bool:
        return character_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[Character]:
        return sorted(self._by_id.values(), key=lambda c: c.id)
