"""The characters being served, by id, and the versions of each kept in memory.

A *version* is a character as one file content defined it, named by the SHA-256 of that
content (``CharacterVersion.hash``). Loading a new content makes it the current version; the
older ones stay (up to ``keep_versions`` per character) so a conversation pinned to one can
go on with it, and so a reply can always say which version produced it.

The catalog does no I/O: an adapter reads the files and hands over characters and hashes.
It is changed only from the event loop, so readers never see half a change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from personae.core.characters import Character
from personae.errors import CharacterNotFound, ConfigurationError, NotFound

ReloadPolicy = Literal["switch", "pin"]
DEFAULT_KEPT_VERSIONS = 16


@dataclass(frozen=True, slots=True)
class CharacterVersion:
    character: Character
    hash: str  # sha256 of the file's bytes, hex
    source: str | None = None  # the file it came from, for people

    @classmethod
    def of(
        cls, character: Character, data: bytes | None = None, source: str | None = None
    ) -> CharacterVersion:
        """A version hashed from the file's bytes; without them (a character built in code),
        from the character's JSON."""
        content = data if data is not None else character.model_dump_json().encode()
        return cls(character, content_hash(content), source)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CharacterCatalog:
    """An in-memory index of characters and their kept versions.

    ``policy`` is what a running conversation gets at its next turn after a reload:
    ``switch`` (the current version) or ``pin`` (the version it has been using, while it is
    kept; see ``for_conversation``).
    """

    def __init__(
        self,
        characters: Iterable[Character | CharacterVersion] = (),
        *,
        policy: ReloadPolicy = "switch",
        keep_versions: int = DEFAULT_KEPT_VERSIONS,
    ) -> None:
        if keep_versions < 1:
            raise ConfigurationError("keep_versions must be at least 1")
        self.policy: ReloadPolicy = policy
        self._keep = keep_versions
        self._current: dict[str, CharacterVersion] = {}
        # Newest first; the current version is always among them. Versions of a removed
        # character stay until it is loaded again, so replies still running can name theirs.
        self._versions: dict[str, list[CharacterVersion]] = {}
        self._errors: dict[str, tuple[str, ...]] = {}
        self.replace(characters)

    # --- changes --------------------------------------------------------------------------

    def replace(self, characters: Iterable[Character | CharacterVersion]) -> None:
        """Serve exactly these characters (kept versions of the ones still served stay)."""
        loaded = [_as_version(c) for c in characters]
        ids = [v.character.id for v in loaded]
        duplicate = next((i for i in ids if ids.count(i) > 1), None)
        if duplicate is not None:
            raise ConfigurationError(
                f"two characters share the id {duplicate!r}", character_id=duplicate
            )
        for character_id in set(self._current) - set(ids):
            self.remove(character_id)
        for version in loaded:
            self.put(version)

    def put(self, version: CharacterVersion) -> bool:
        """Make ``version`` the current one of its character; clears its load errors.
        Returns whether the current version changed."""
        character_id = version.character.id
        self._errors.pop(character_id, None)
        current = self._current.get(character_id)
        if current is not None and current.hash == version.hash:
            return False
        kept = self._versions.setdefault(character_id, [])
        # A content seen before becomes current again as the very object kept then, so
        # ``version_of`` still knows it in turns that hold it.
        known = next((v for v in kept if v.hash == version.hash), None)
        if known is not None:
            kept.remove(known)
            version = known
        kept.insert(0, version)
        del kept[self._keep :]
        self._current[character_id] = version
        return True

    def remove(self, character_id: str) -> bool:
        """Stop serving a character (its file is gone). Returns whether it was served."""
        self._errors.pop(character_id, None)
        return self._current.pop(character_id, None) is not None

    def set_errors(self, character_id: str, errors: Sequence[str]) -> None:
        """The character's file no longer loads; its current version keeps serving."""
        if character_id in self._current:
            self._errors[character_id] = tuple(errors)

    # --- reading --------------------------------------------------------------------------

    def get(self, character_id: str, version: str | None = None) -> Character:
        """The current version, or the kept version with this hash."""
        return self.get_version(character_id, version).character

    def get_version(self, character_id: str, version: str | None = None) -> CharacterVersion:
        current = self._current.get(character_id)
        if current is None:
            raise CharacterNotFound(character_id)
        if version is None or version == current.hash:
            return current
        kept = self._versions[character_id]
        for candidate in kept:
            if candidate.hash == version:
                return candidate
        # A unique prefix (as `personae release --version ab12cd` takes it) names one too.
        matches = [c for c in kept if len(version) >= 6 and c.hash.startswith(version)]
        if len(matches) == 1:
            return matches[0]
        raise NotFound(
            f"character {character_id!r} has no kept version {version[:12]}",
            character_id=character_id,
            version=version,
        )

    def versions(self, character_id: str) -> list[CharacterVersion]:
        """The kept versions of a served character, newest (the current one) first."""
        if character_id not in self._current:
            raise CharacterNotFound(character_id)
        return list(self._versions[character_id])

    def version_of(self, character: Character) -> str | None:
        """The hash of the version this very character object is (None if not kept)."""
        for kept in self._versions.get(character.id, ()):
            if kept.character is character:
                return kept.hash
        return None

    def for_conversation(self, character_id: str, version: str | None) -> Character:
        """What a conversation whose latest reply came from ``version`` gets next: under
        ``pin`` that version while it is kept, else (and under ``switch``) the current one."""
        current = self.get(character_id)
        if self.policy == "pin" and version is not None:
            for kept in self._versions[character_id]:
                if kept.hash == version:
                    return kept.character
        # Not kept any longer (or never): the conversation moves to the current version.
        return current

    def errors(self, character_id: str) -> tuple[str, ...]:
        """Why the character's file did not load the last time it changed (empty: it did)."""
        return self._errors.get(character_id, ())

    def __contains__(self, character_id: object) -> bool:
        return character_id in self._current

    def __len__(self) -> int:
        return len(self._current)

    def all(self) -> list[Character]:
        return [v.character for v in self.all_versions()]

    def all_versions(self) -> list[CharacterVersion]:
        """The current version of every served character, by id."""
        return [self._current[i] for i in sorted(self._current)]


def _as_version(item: Character | CharacterVersion) -> CharacterVersion:
    return item if isinstance(item, CharacterVersion) else CharacterVersion.of(item)
