"""Which character answers a platform message, and the chat commands: pure functions.

In a private chat the chat's binding (``/character``) answers, else the channel's default. In
a group chat the bot speaks only when addressed: a character named in the text answers (it
wins over the binding), else the bound or default character when the bot was mentioned or
replied to; anything else is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from personae.core.channels import PlatformMessage

_COMMAND = re.compile(r"^/([A-Za-z][A-Za-z0-9_]{0,31})(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # lower case, without the slash or a ``@bot`` suffix
    argument: str  # the rest, stripped ("" when none)


def parse_command(text: str) -> Command | None:
    """``/name[@bot] [argument]``, or None for an ordinary message."""
    match = _COMMAND.match(text.strip())
    if match is None:
        return None
    return Command(match[1].lower(), (match[2] or "").strip())


@dataclass(frozen=True, slots=True)
class Persona:
    """A character as routing sees it: its id and the names it answers to."""

    id: str
    names: tuple[str, ...]


def named_character(text: str, personas: Sequence[Persona]) -> str | None:
    """The first character (by position in ``text``) whose name appears as a whole word."""
    best: tuple[int, str] | None = None
    for persona in personas:
        for name in persona.names:
            if not name.strip():
                continue
            found = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, re.IGNORECASE)
            if found and (best is None or found.start() < best[0]):
                best = (found.start(), persona.id)
    return None if best is None else best[1]


def choose_character(
    message: PlatformMessage,
    *,
    bound: str | None,
    default: str | None,
    personas: Sequence[Persona],
) -> str | None:
    """The character that answers, or None: in a group nobody was addressed, or in a private
    chat no character is bound and there is no default."""
    if message.group:
        named = named_character(message.text, personas)
        if named is not None:
            return named
        if not message.mentioned:
            return None
    return bound or default
