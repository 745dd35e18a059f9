"""Text macros in character definitions: ``{{char}}`` and ``{{user}}`` (and the legacy
``<BOT>``/``<USER>``). The characters issue extends this with random/pick/roll/comments."""

from __future__ import annotations

import re

_MACRO = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)


def expand(text: str, *, char: str, user: str) -> str:
    def replace(match: re.Match[str]) -> str:
        which = (match.group(1) or match.group(2)).lower()
        return char if which in {"char", "bot"} else user

    return _MACRO.sub(replace, text)
