"""Group chats: who speaks next when several characters share a conversation.

The order SillyTavern users know ("natural order"), decided on the server and reproducible:

1. a forced speaker (an operator's or a user's "/speak <name>") speaks, alone;
2. otherwise every character named in the message speaks, in the order they are named
   (a name or nickname as a whole word, case-insensitive);
3. then each other character, visited in a shuffled order, speaks if a draw falls under its
   talkativeness (``extensions.talkativeness``, 0..1, default 0.5);
4. if nobody was chosen, one character is picked at random.

Muted characters never speak unless forced. The character that spoke last is not chosen
again by its own message (no talking to itself). The random draws come from a seeded
generator (the conversation and its turn), so a conversation replays the same way. The
conversation's round ends after ``max_consecutive`` character replies without a user
message (the caller counts them).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from personae.core.characters import Character
from personae.core.types import Message, Role

DEFAULT_TALKATIVENESS = 0.5


@dataclass(frozen=True, slots=True)
class Member:
    character: Character
    muted: bool = False

    @property
    def id(self) -> str:
        return self.character.id

    @property
    def talkativeness(self) -> float:
        return talkativeness(self.character)


def talkativeness(character: Character) -> float:
    """``extensions.talkativeness`` as SillyTavern writes it (a number or a numeric string),
    clamped to 0..1; the default when missing or unreadable."""
    raw = character.extensions.get("talkativeness", DEFAULT_TALKATIVENESS)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_TALKATIVENESS
    return min(max(value, 0.0), 1.0) if value == value else DEFAULT_TALKATIVENESS  # NaN


def mentioned(members: Sequence[Member], text: str) -> list[str]:
    """The ids of the members named in ``text``, in the order of their first mention."""
    found: list[tuple[int, str]] = []
    for member in members:
        names = {member.character.name, member.character.char_name}
        positions = [
            match.start()
            for name in names
            if name.strip()
            for match in re.finditer(rf"(?<!\w){re.escape(name.strip())}(?!\w)", text, re.I)
        ]
        if positions:
            found.append((min(positions), member.id))
    return [member_id for _, member_id in sorted(found)]


def next_speakers(
    members: Sequence[Member],
    text: str,
    *,
    rng: random.Random,
    last_speaker: str | None = None,
    forced: str | None = None,
) -> list[str]:
    """The characters that answer ``text``, in order (see the module's docstring)."""
    ids = {m.id for m in members}
    if forced is not None:
        if forced not in ids:
            raise ValueError(f"{forced!r} is not in this group")
        return [forced]
    speaking = [m for m in members if not m.muted and m.id != last_speaker]
    chosen = mentioned(speaking, text)
    rest = [m for m in speaking if m.id not in chosen]
    rng.shuffle(rest)
    chosen += [m.id for m in rest if rng.random() < m.talkativeness]
    if not chosen and speaking:
        chosen = [rng.choice(speaking).id]
    return chosen


def group_history(
    messages: Sequence[Message], speaker: str, names: Mapping[str, str]
) -> list[Message]:
    """The shared history as ``speaker`` sees it: its own replies as the assistant's, every
    other line (other characters', every user's) as a user message headed by who said it."""
    seen = []
    for message in messages:
        if message.role is Role.ASSISTANT and message.speaker == speaker:
            seen.append(message)
            continue
        who = names.get(message.speaker or "", message.speaker or "")
        text = f"{who}: {message.content}" if who else message.content
        seen.append(replace(message, role=Role.USER, content=text))
    return seen


def nudge(character: Character) -> str:
    """The closing line of a group prompt: whose reply comes next."""
    return f"[Write the next reply only as {character.char_name}.]"
