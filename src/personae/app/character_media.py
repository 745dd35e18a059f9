"""A served character's avatar and its file in another card format, read from the characters
folder: what ``GET /api/characters/{id}/avatar`` and ``.../export`` answer.

Avatars are made once per version (a thumbnail of the card's picture) and kept while that
version is current: the gallery asks for every character's on each page load."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from personae.characters.avatar import MEDIA_TYPE, avatar
from personae.characters.cards.codec import ExportFormat
from personae.characters.library import export_character
from personae.core.catalog import CharacterCatalog
from personae.errors import InvalidInput

_EXPORT_TYPES = {
    ExportFormat.V2: ("application/json", "json"),
    ExportFormat.V3: ("application/json", "json"),
    ExportFormat.PNG: ("image/png", "png"),
    ExportFormat.CHARX: ("application/zip", "charx"),
    ExportFormat.YAML: ("application/yaml", "yaml"),
}


@dataclass(frozen=True, slots=True)
class MediaFile:
    data: bytes
    media_type: str
    tag: str  # changes when the content does: the version's hash (an ETag)
    filename: str | None = None


class FolderMedia:
    def __init__(self, folder: Path, catalog: CharacterCatalog) -> None:
        self._folder = folder
        self._catalog = catalog
        self._avatars: dict[str, MediaFile] = {}  # character id -> its current version's

    async def avatar(self, character_id: str) -> MediaFile:
        """Raises ``CharacterNotFound``."""
        version = self._catalog.get_version(character_id)
        cached = self._avatars.get(character_id)
        if cached is not None and cached.tag == version.hash:
            return cached
        made = MediaFile(
            await asyncio.to_thread(avatar, version.character, self._original(version.source)),
            MEDIA_TYPE,
            version.hash,
        )
        self._avatars[character_id] = made
        return made

    async def export(self, character_id: str, fmt: str) -> MediaFile:
        """The character's file as ``fmt`` (v2, v3, png, charx, yaml). Raises
        ``CharacterNotFound`` (also for a character not read from the folder) and
        ``InvalidInput``."""
        try:
            chosen = ExportFormat(fmt)
        except ValueError:
            known = ", ".join(f.value for f in ExportFormat)
            raise InvalidInput(f"unknown export format {fmt!r}; one of {known}") from None
        version = self._catalog.get_version(character_id)
        _, data = await asyncio.to_thread(export_character, self._folder, character_id, chosen)
        media_type, suffix = _EXPORT_TYPES[chosen]
        name = f"{character_id}.{chosen.value}.{suffix}" if suffix == "json" else None
        return MediaFile(data, media_type, version.hash, name or f"{character_id}.{suffix}")

    def _original(self, source: str | None) -> bytes | None:
        if source is None:  # built in code, not read from a file
            return None
        try:
            return (self._folder / source).read_bytes()
        except OSError:  # gone since it was read: the placeholder will do
            return None
