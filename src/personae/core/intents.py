"""Intent detection, stage 1: fast rule triggers, no model involved.

A slash command (``/roll 2d6``) names its skill outright; keywords and regular expressions
recognise a request inside ordinary text. Only the skills a character lists are considered, in
the character's order; a slash command wins over keywords and patterns. Stage 2 (the model's
tool calls) is not here yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from personae.core.skills import Intent, Keywords, Pattern, Skill, SlashCommand

_COMMAND = re.compile(r"^\s*/([A-Za-z0-9_.-]+)(?:\s+(.*))?$", re.DOTALL)


def detect_intent(text: str, skills: Iterable[Skill]) -> Intent | None:
    """The first skill whose trigger fires on ``text``, or None."""
    skills = list(skills)
    command = _COMMAND.match(text)
    if command:
        name, rest = command.group(1).lower(), (command.group(2) or "").strip()
        for skill in skills:
            for trigger in skill.triggers:
                if isinstance(trigger, SlashCommand) and trigger.name.lower() == name:
                    return Intent(skill.name, trigger, rest)
    for skill in skills:
        for trigger in skill.triggers:
            if isinstance(trigger, Keywords) and _keywords(trigger.words).search(text):
                return Intent(skill.name, trigger, text)
            if isinstance(trigger, Pattern):
                match = _pattern(trigger.regex).search(text)
                if match:
                    groups = {k: v for k, v in match.groupdict().items() if v is not None}
                    return Intent(skill.name, trigger, text, groups)
    return None


@lru_cache(maxsize=256)
def _keywords(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(word) for word in words if word.strip())
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)" if alternatives else r"(?!)", re.I)


@lru_cache(maxsize=256)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE)
