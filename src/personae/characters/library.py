"""The characters folder as a library: import files into it, find a character, export one.

Import keeps each file as it is (a PNG stays that PNG, a CHARX keeps its assets), named after
the character's id, and refuses to replace a character with the same id unless forced. Files
are written to a dot-named temporary file first and renamed, so the loader (and the hot
reload watcher to come) never sees half a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from personae.characters.cards import ExportFormat, decode_character, encode_character
from personae.characters.loader import load_characters_dir, read_character_file
from personae.core.characters import Character
from personae.errors import CharacterDefinitionError, CharacterNotFound


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    source: Path
    character: Character | None = None
    target: Path | None = None
    replaced: Path | None = None  # the file of the same id that --force replaced
    error: str | None = None


def import_files(
    paths: Sequence[Path], folder: Path, *, force: bool = False
) -> list[ImportOutcome]:
    """Validate and copy each file into ``folder``; one outcome per file, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    taken = dict(load_characters_dir(folder).files)  # id -> file
    outcomes = []
    for path in paths:
        try:
            character, data = read_character_file(path)
        except CharacterDefinitionError as exc:
            outcomes.append(ImportOutcome(path, error=str(exc)))
            continue
        existing = taken.get(character.id)
        if existing is not None and existing.resolve() == path.resolve():
            outcomes.append(ImportOutcome(path, character, target=existing))  # in the folder
            continue
        outcome = _place(path, character, data, folder, taken, force)
        if outcome.target is not None:
            taken[character.id] = outcome.target
        outcomes.append(outcome)
    return outcomes


def import_upload(
    data: bytes, filename: str, folder: Path, *, force: bool = False
) -> ImportOutcome:
    """Validate an uploaded file (its name's suffix says what it is) and place it in ``folder``
    as ``import_files`` does. Raises ``CharacterDefinitionError`` when it is not a character;
    a clash with another file is the outcome's ``error``."""
    name = Path(filename).name or "upload"
    character = decode_character(data, suffix=Path(name).suffix, source=name)
    folder.mkdir(parents=True, exist_ok=True)
    taken = dict(load_characters_dir(folder).files)
    return _place(Path(name), character, data, folder, taken, force, hint="send force=true")


def _place(
    path: Path,
    character: Character,
    data: bytes,
    folder: Path,
    taken: dict[str, Path],
    force: bool,
    *,
    hint: str = "use --force",
) -> ImportOutcome:
    target = folder / f"{character.id}{path.suffix.lower()}"
    existing = taken.get(character.id)
    if existing is not None and not force:
        return ImportOutcome(
            path,
            character,
            error=f"{path}: id {character.id!r} is already used by {existing.name}; "
            f"{hint} to replace it",
        )
    owner = next((cid for cid, file in taken.items() if file == target), None)
    if owner is not None and owner != character.id:
        return ImportOutcome(
            path, character, error=f"{path}: {target.name} holds another character ({owner!r})"
        )
    if target.exists() and existing != target and not force:
        return ImportOutcome(
            path,
            character,
            error=f"{path}: {target.name} already exists; {hint} to replace it",
        )
    write_atomically(target, data)
    if existing is not None and existing != target:
        existing.unlink(missing_ok=True)
    return ImportOutcome(path, character, target=target, replaced=existing)


def write_atomically(target: Path, data: bytes) -> None:
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(target)


def find_character(folder: Path, character_id: str) -> tuple[Character, Path, bytes]:
    """The character with this id, its file and the file's bytes."""
    path = load_characters_dir(folder).files.get(character_id)
    if path is None:
        raise CharacterNotFound(character_id)
    character, data = read_character_file(path)
    return character, path, data


def export_character(
    folder: Path, character_id: str, fmt: ExportFormat, *, image: bytes | None = None
) -> tuple[Character, bytes]:
    character, _, original = find_character(folder, character_id)
    return character, encode_character(character, fmt, original=original, image=image)
