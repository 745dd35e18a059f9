"""The characters folder as the catalog sees it: which file serves which character id, and
what a changed file does to the catalog.

Reading is split from applying: ``read_files`` does the blocking work (run it in a thread),
``CharacterFolder.apply`` changes the catalog in one synchronous step on the event loop, so a
turn never sees half a change (a file renamed within one batch is never missing).

The rules, for each file in a batch:

- valid: it becomes the current version of its character (new conversations get it at once;
  running ones at their next turn, or never under ``pin``). If it now names another id, the
  id it served goes away. An id already served by another file is refused (first come, first
  served; at start-up, in file name order), and the refused file waits: it takes over when
  the other file stops serving that id.
- invalid: the version loaded before keeps serving; the error is logged and recorded on the
  character (``CharacterCatalog.errors``).
- gone: its character is no longer served (see docs/characters.md, "Hot reload").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from personae.characters.loader import is_character_file, read_character_file
from personae.characters.lorebooks import LorebookShelf
from personae.core.catalog import CharacterCatalog, CharacterVersion
from personae.core.characters import Character
from personae.errors import CharacterDefinitionError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FileRead:
    """A file as it is now: a version, an error, or (neither) gone."""

    path: Path
    version: CharacterVersion | None = None
    error: CharacterDefinitionError | None = None


Prepare = Callable[[Character], Character]


def read_file(
    path: Path, prepare: Prepare | None = None, lorebooks: LorebookShelf | None = None
) -> FileRead:
    """Blocking: read and validate one file; ``lorebooks`` attaches the standalone books it
    names, ``prepare`` finishes the character before it is served. The version's hash is the
    file's, plus the attached books' when there are any."""
    if not (is_character_file(path) and path.is_file()):
        return FileRead(path)
    try:
        character, data = read_character_file(path)
    except CharacterDefinitionError as exc:
        if not path.exists():  # deleted while being read
            return FileRead(path)
        return FileRead(path, error=exc)
    if lorebooks is not None:
        character, books = lorebooks.attach(character)
        if books:
            data += b"\0lorebooks:" + books
    if prepare is not None:
        character = prepare(character)
    return FileRead(path, CharacterVersion.of(character, data, source=path.name))


def read_files(
    paths: Iterable[Path], prepare: Prepare | None = None, lorebooks: LorebookShelf | None = None
) -> list[FileRead]:
    return [read_file(path, prepare, lorebooks) for path in sorted(set(paths))]


def list_folder(folder: Path) -> list[Path]:
    """Blocking: the character files in the folder (none if it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_character_file(p) and p.is_file())


def problem(error: CharacterDefinitionError, path: Path) -> str:
    """The error as shown to API callers: the file's name, not the server's path."""
    return f"{path.name}: {error.message.removeprefix(f'{error.source}: ')}"


class CharacterFolder:
    """The files of one folder and the characters they serve in ``catalog``."""

    def __init__(
        self,
        path: Path,
        catalog: CharacterCatalog,
        *,
        prepare: Prepare | None = None,
        lorebooks: LorebookShelf | None = None,
    ) -> None:
        self.path = path
        self.catalog = catalog
        self.lorebooks = lorebooks  # standalone books, attached by name
        self._prepare = prepare
        self._id_of: dict[Path, str] = {}  # file -> the id it serves
        self._owner: dict[str, Path] = {}  # id -> the file serving it
        self._waiting: dict[Path, CharacterVersion] = {}  # valid, but the id is taken
        self.broken: dict[Path, CharacterDefinitionError] = {}  # files that do not load now
        # Called after a batch that changed what the catalog serves (other nodes reload).
        self.on_change: Callable[[], None] | None = None
        self._changed = False

    def known(self) -> set[Path]:
        """Every file this folder has an opinion about (a rescan must read them all)."""
        return set(self._id_of) | set(self._waiting) | set(self.broken)

    def read(self, paths: Iterable[Path]) -> list[FileRead]:
        """Blocking: read these files (changed, added or gone)."""
        return read_files(paths, self._prepare, self.lorebooks)

    def rescan(self, *, with_lorebooks: bool = False) -> list[FileRead]:
        """Blocking: read every file in the folder, and the known ones that are gone;
        ``with_lorebooks`` reads the lorebooks folder again first (a book changed: every
        character that attaches it gets a new version)."""
        if with_lorebooks and self.lorebooks is not None:
            self.lorebooks.reload()
        return self.read([*list_folder(self.path), *self.known()])

    def apply(
        self, reads: Sequence[FileRead], *, announce: bool = True, notify: bool = True
    ) -> None:
        """Apply a batch: files that are gone first (so an id can move to another file in
        the same batch), then the others in name order. ``announce`` logs each load;
        ``notify`` calls ``on_change`` if the batch changed anything (not when the batch
        is itself the echo of another node's change)."""
        self._changed = False
        for read in sorted(
            reads, key=lambda r: (r.version is not None or r.error is not None, r.path)
        ):
            if read.version is not None:
                self._loaded(read.path, read.version, announce)
            elif read.error is not None:
                self._failed(read.path, read.error)
            else:
                self._gone(read.path)
        if self._changed and notify and self.on_change is not None:
            self.on_change()

    def _loaded(self, path: Path, version: CharacterVersion, announce: bool) -> None:
        character_id = version.character.id
        owner = self._owner.get(character_id)
        if owner is not None and owner != path:
            self._failed(
                path,
                CharacterDefinitionError(
                    f"id {character_id!r} is already used by {owner.name}",
                    source=str(path),
                    character_id=character_id,
                ),
            )
            self._waiting[path] = version
            return
        self._waiting.pop(path, None)
        self.broken.pop(path, None)
        if self._id_of.get(path, character_id) != character_id:
            self._release(path, reason="its file now defines another character")
        self._id_of[path] = character_id
        self._owner[character_id] = path
        if not self.catalog.put(version):
            return
        self._changed = True
        if announce:
            log.info(
                "character loaded",
                character=character_id,
                version=version.hash[:12],
                file=path.name,
            )

    def _failed(self, path: Path, error: CharacterDefinitionError) -> None:
        self._waiting.pop(path, None)
        self.broken[path] = error
        character_id = self._id_of.get(path)
        if character_id is None:
            log.error("character not loaded", file=path.name, error=error.message)
            return
        self.catalog.set_errors(character_id, [problem(error, path)])
        log.error(
            "character not reloaded; the previous version keeps serving",
            character=character_id,
            file=path.name,
            error=error.message,
        )

    def _gone(self, path: Path) -> None:
        self._waiting.pop(path, None)
        self.broken.pop(path, None)
        if path in self._id_of:
            self._release(path, reason="its file is gone")

    def _release(self, path: Path, *, reason: str) -> None:
        """``path`` stops serving its id; a file waiting for that id takes over."""
        character_id = self._id_of.pop(path)
        del self._owner[character_id]
        heir = next(
            (p for p in sorted(self._waiting) if self._waiting[p].character.id == character_id),
            None,
        )
        if heir is not None:
            self._loaded(heir, self._waiting[heir], announce=True)
            return
        self.catalog.remove(character_id)
        self._changed = True
        log.warning("character removed", reason=reason, character=character_id, file=path.name)
