"""Small builders for lorebook tests: a book from a few entries, a scan that returns labels."""

from __future__ import annotations

from typing import Any

from personae.core.lorebook import Lorebook, parse_book, scan


def entry(
    name: str, keys: list[str] | None = None, content: str | None = None, **fields: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "keys": keys if keys is not None else [name],
        "content": content if content is not None else f"Lore about {name}.",
        "extensions": fields.pop("extensions", {}),
        "enabled": fields.pop("enabled", True),
        "insertion_order": fields.pop("insertion_order", 100),
        **fields,
    }


def book(*entries: dict[str, Any], **settings: Any) -> Lorebook:
    return parse_book({"entries": list(entries), "extensions": {}, **settings})


def active(lorebook: Lorebook, *messages: str, turn: int | None = None, **kw: Any) -> list[str]:
    return [e.label for e in scan(lorebook, list(messages), turn=turn, **kw)]
