"""Characters uploaded over the API (``POST /api/characters``) land in the characters folder
as ``personae characters import`` would put them there, and are served at once: the folder
reads the new file and applies it to the catalog now, not when the watcher notices (it may
be off). When the watcher does notice, the same content is already current and nothing
changes."""

from __future__ import annotations

import asyncio

from personae.characters.library import import_upload
from personae.characters.reload import CharacterFolder
from personae.core.catalog import CharacterVersion
from personae.errors import CharacterDefinitionError, Conflict


class FolderUploads:
    def __init__(self, folder: CharacterFolder) -> None:
        self._folder = folder
        self._lock = asyncio.Lock()  # one upload at a time: each checks the folder's ids

    async def import_file(self, data: bytes, filename: str, *, force: bool) -> CharacterVersion:
        async with self._lock:
            outcome = await asyncio.to_thread(
                import_upload, data, filename, self._folder.path, force=force
            )
            if outcome.error is not None or outcome.target is None or outcome.character is None:
                raise Conflict(outcome.error or "the file was not imported")
            changed = [outcome.target, *([outcome.replaced] if outcome.replaced else [])]
            reads = await asyncio.to_thread(self._folder.read, changed)
            self._folder.apply(reads)
        error = self._folder.broken.get(outcome.target)
        if error is not None:  # valid alone, refused by the folder (its id is taken)
            raise CharacterDefinitionError(error.message, source=outcome.target.name)
        return self._folder.catalog.get_version(outcome.character.id)
