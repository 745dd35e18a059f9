"""Reads every character file in a folder: native YAML (``.yaml``/``.yml``) and Character
Cards (``.json``, ``.png``/``.apng``, ``.charx``). A broken file is reported and skipped, never
fatal: one bad upload must not take every other character down. Given a lorebooks folder, it
also reads the standalone lorebooks there and attaches them to the characters that name
them (``characters/lorebooks.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from personae.characters.cards import CONTAINERS, decode_character
from personae.characters.cards.limits import MAX_BYTES_BY_SUFFIX, MAX_YAML_BYTES
from personae.characters.files import read_limited
from personae.characters.lorebooks import attach_lorebooks, load_lorebooks_dir
from personae.core.characters import Character
from personae.core.lorebook import Lorebook
from personae.errors import CharacterDefinitionError

CHARACTER_SUFFIXES = tuple(CONTAINERS)
MAX_FILE_BYTES = MAX_YAML_BYTES  # the limit for native files; cards have their own


@dataclass(slots=True)
class LoadReport:
    characters: list[Character] = field(default_factory=list)
    errors: list[CharacterDefinitionError] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # character id -> its file
    lorebooks: dict[str, Lorebook] = field(default_factory=dict)  # standalone, by name
    warnings: list[str] = field(default_factory=list)  # loaded, but not all as written


def is_character_file(path: Path) -> bool:
    # Dot files are editors' and importers' temporary files.
    return path.suffix.lower() in CHARACTER_SUFFIXES and not path.name.startswith(".")


def read_character_file(path: Path) -> tuple[Character, bytes]:
    """One character and the bytes it was read from (export reuses a PNG's image and a
    CHARX's assets)."""
    source = str(path)
    limit = MAX_BYTES_BY_SUFFIX.get(path.suffix.lower())
    if limit is None:
        raise CharacterDefinitionError(f"unknown kind of file {path.suffix!r}", source=source)
    data = read_limited(path, limit)
    return decode_character(data, suffix=path.suffix, source=source), data


def load_character_file(path: Path) -> Character:
    return read_character_file(path)[0]


def load_characters_dir(folder: Path, *, lorebooks: Path | None = None) -> LoadReport:
    """Every character in ``folder``; with ``lorebooks``, the standalone books there too,
    attached to the characters that name them."""
    report = LoadReport()
    if lorebooks is not None:
        books = load_lorebooks_dir(lorebooks)
        report.lorebooks, report.warnings = books.books, books.warnings
        report.errors.extend(books.errors)
    if not folder.is_dir():
        report.errors.append(
            CharacterDefinitionError("the characters folder does not exist", source=str(folder))
        )
        return report
    for path in sorted(p for p in folder.iterdir() if is_character_file(p) and p.is_file()):
        try:
            character = load_character_file(path)
        except CharacterDefinitionError as exc:
            report.errors.append(exc)
            continue
        if character.id in report.files:
            report.errors.append(
                CharacterDefinitionError(
                    f"id {character.id!r} is already used by {report.files[character.id].name}",
                    source=str(path),
                    character_id=character.id,
                )
            )
            continue
        if character.book is not None:
            report.warnings.extend(f"{path}: character_book.{w}" for w in character.book.warnings)
        if lorebooks is not None:
            character, missing = attach_lorebooks(character, report.lorebooks)
            report.warnings.extend(missing)
        report.files[character.id] = path
        report.characters.append(character)
    return report
