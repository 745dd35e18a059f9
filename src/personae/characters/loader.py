"""Reads every character file in a folder. A broken file is reported and skipped, never fatal:
one bad upload must not take every other character down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from personae.core.characters import Character, parse_character_yaml
from personae.errors import CharacterDefinitionError

CHARACTER_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 1_000_000


@dataclass(slots=True)
class LoadReport:
    characters: list[Character] = field(default_factory=list)
    errors: list[CharacterDefinitionError] = field(default_factory=list)


def load_character_file(path: Path) -> Character:
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CharacterDefinitionError(
                f"the file has {size} bytes; the limit is {MAX_FILE_BYTES}", source=source
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CharacterDefinitionError("the file is not UTF-8 text", source=source) from exc
    except OSError as exc:
        raise CharacterDefinitionError(f"cannot read the file: {exc}", source=source) from exc
    return parse_character_yaml(text, source=source)


def load_characters_dir(folder: Path) -> LoadReport:
    report = LoadReport()
    if not folder.is_dir():
        report.errors.append(
            CharacterDefinitionError("the characters folder does not exist", source=str(folder))
        )
        return report
    seen: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix in CHARACTER_SUFFIXES):
        try:
            character = load_character_file(path)
        except CharacterDefinitionError as exc:
            report.errors.append(exc)
            continue
        if character.id in seen:
            report.errors.append(
                CharacterDefinitionError(
                    f"id {character.id!r} is already used by {seen[character.id].name}",
                    source=str(path),
                )
            )
            continue
        seen[character.id] = path
        report.characters.append(character)
    return report
