"""Standalone lorebooks: JSON files in the lorebooks folder, attached to characters by name.

A file holds a ``lorebook_v3`` document (``{"spec": "lorebook_v3", "data": {...}}``) or a
SillyTavern world info file (``{"entries": {"0": {...}, ...}}``, what its ``extensions.world``
names). A book is named by its file name without ``.json``, and also by its own ``name`` when
no other book is called that. A character attaches books with the native ``lorebooks: [names]``
field or a card's ``extensions.world``; one book can serve many characters. A broken file is
reported and skipped, as a broken character is; a name no book answers to is a warning (a
card shared without its world is common), and the character loads without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeGuard

import structlog

from personae.characters.cards.jsontext import decode_json
from personae.characters.cards.limits import MAX_JSON_BYTES
from personae.characters.files import read_limited
from personae.core.characters import Character
from personae.core.lorebook import Lorebook, LorebookError, parse_book, parse_lorebook_v3
from personae.errors import CharacterDefinitionError

LOREBOOK_SUFFIX = ".json"

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class LorebookReport:
    books: dict[str, Lorebook] = field(default_factory=dict)  # by every name it answers to
    files: dict[str, Path] = field(default_factory=dict)  # name -> its file
    digests: dict[Path, str] = field(default_factory=dict)  # file -> sha256 of its bytes
    errors: list[CharacterDefinitionError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_lorebook_file(path: Path) -> bool:
    return path.suffix.lower() == LOREBOOK_SUFFIX and not path.name.startswith(".")


def decode_lorebook(data: bytes, *, source: str) -> Lorebook:
    """One lorebook file's bytes as a Lorebook, or ``CharacterDefinitionError``."""
    document = decode_json(data, source=source)
    try:
        if _is_sillytavern_world(document):
            return parse_book(_from_sillytavern(document))
        return parse_lorebook_v3(document)
    except LorebookError as exc:
        raise CharacterDefinitionError(f"not a usable lorebook: {exc}", source=source) from None


def read_lorebook_file(path: Path) -> Lorebook:
    return decode_lorebook(read_limited(path, MAX_JSON_BYTES), source=str(path))


def _read_with_digest(path: Path) -> tuple[Lorebook, str]:
    data = read_limited(path, MAX_JSON_BYTES)
    return decode_lorebook(data, source=str(path)), hashlib.sha256(data).hexdigest()


def load_lorebooks_dir(folder: Path) -> LorebookReport:
    """Every lorebook in ``folder``; a missing folder is no error (lorebooks are optional)."""
    report = LorebookReport()
    if not folder.is_dir():
        return report
    loaded: list[tuple[Path, Lorebook]] = []
    for path in sorted(p for p in folder.iterdir() if is_lorebook_file(p) and p.is_file()):
        try:
            book, digest = _read_with_digest(path)
        except CharacterDefinitionError as exc:
            report.errors.append(exc)
            continue
        report.warnings.extend(f"{path}: {warning}" for warning in book.warnings)
        report.books[path.stem] = book
        report.files[path.stem] = path
        report.digests[path] = digest
        loaded.append((path, book))
    # Own names second, so a file name always wins over another book's ``name``.
    for path, book in loaded:
        if not book.name or book.name == path.stem:
            continue
        if book.name in report.books:
            report.warnings.append(
                f"{path}: its name {book.name!r} belongs to {report.files[book.name].name}; "
                f"attach this book as {path.stem!r}"
            )
            continue
        report.books[book.name] = book
        report.files[book.name] = path
    return report


def attach_lorebooks(
    character: Character, books: Mapping[str, Lorebook]
) -> tuple[Character, list[str]]:
    """The character with the books it names attached, and a warning per name not found."""
    names = character.lorebook_names
    if not names:
        return character, []
    found: list[Lorebook] = []
    warnings = []
    for name in names:
        book = books.get(name)
        if book is None:
            warnings.append(f"character {character.id!r}: no lorebook is named {name!r}")
        else:  # named as the character names it, so its own book can give way (Character.books)
            found.append(book if book.name == name else replace(book, name=name))
    return (character.with_lorebooks(tuple(found)) if found else character), warnings


class LorebookShelf:
    """The standalone lorebooks of one folder as they are now, for the characters folder to
    attach (``CharacterFolder(lorebooks=...)``). ``reload`` reads the folder again (hot
    reload calls it when a file there changes); a book whose file became unreadable keeps
    serving as it was, as a broken character file does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._report = LorebookReport()

    def reload(self) -> None:
        """Blocking: read the folder, log what is broken or odd in it."""
        report = load_lorebooks_dir(self.path)
        for error in report.errors:
            kept = self._keep_previous(report, Path(error.source))
            log.error(
                "lorebook not loaded" + ("; the previous version keeps serving" if kept else ""),
                source=error.source,
                error=error.message,
            )
        for warning in report.warnings:
            log.warning("lorebook loaded with a problem", problem=warning)
        if report.books:
            count = len(set(report.files.values()))
            log.info("lorebooks loaded", count=count, folder=str(self.path))
        self._report = report

    def _keep_previous(self, report: LorebookReport, path: Path) -> bool:
        names = [n for n, f in self._report.files.items() if f == path and n not in report.books]
        for name in names:
            report.books[name] = self._report.books[name]
            report.files[name] = path
            report.digests[path] = self._report.digests[path]
        return bool(names)

    def attach(self, character: Character) -> tuple[Character, bytes]:
        """The character with the books it names, and what identifies their content (part
        of the character's version: an edited book is a new version of its characters)."""
        attached, missing = attach_lorebooks(character, self._report.books)
        for warning in missing:
            log.warning("lorebook not found", problem=warning)
        digests = [
            f"{name}={self._report.digests[self._report.files[name]]}"
            for name in character.lorebook_names
            if name in self._report.files
        ]
        return attached, ";".join(digests).encode()


def _is_sillytavern_world(document: object) -> TypeGuard[dict[str, Any]]:
    return (
        isinstance(document, dict)
        and "spec" not in document
        and isinstance(document.get("entries"), dict)
    )


def _from_sillytavern(world: dict[str, Any]) -> dict[str, Any]:
    """A SillyTavern world info file as a ``character_book``, the way SillyTavern itself
    exports one into a card (its own settings ride in each entry's extensions)."""
    entries = []
    for uid, raw in world["entries"].items():
        if not isinstance(raw, dict):
            raise LorebookError(f"entries.{uid}: expected an object")

        def get(key: str, default: Any, raw: dict[str, Any] = raw) -> Any:
            value = raw.get(key)
            return default if value is None else value  # SillyTavern writes nulls freely

        entry: dict[str, Any] = {
            "id": get("uid", uid),
            "keys": get("key", []),
            "secondary_keys": get("keysecondary", []),
            "comment": get("comment", ""),
            "content": get("content", ""),
            "constant": get("constant", False),
            "selective": get("selective", True),
            "insertion_order": get("order", 100),
            "enabled": not get("disable", False),
            "extensions": {
                "position": get("position", 0),
                "depth": get("depth", 4),
                "role": raw.get("role"),
                "selectiveLogic": get("selectiveLogic", 0),
                "case_sensitive": raw.get("caseSensitive"),
                "match_whole_words": raw.get("matchWholeWords"),
                "exclude_recursion": get("excludeRecursion", False),
                "prevent_recursion": get("preventRecursion", False),
            },
        }
        entries.append(entry)
    book: dict[str, Any] = {"entries": entries, "extensions": {}}
    if isinstance(world.get("name"), str):
        book["name"] = world["name"]
    return book
