"""Long replies split into platform messages at sentence boundaries.

A part ends, in order of preference, at the last sentence end (``.``, ``!``, ``?``, ``…``
followed by space, or a line break) in its second half, else at the last space there, else
exactly at the limit. Lengths are measured by the platform's own rule (Telegram counts UTF-16
code units, so one emoji can cost two).
"""

from __future__ import annotations

import re
from collections.abc import Callable

Measure = Callable[[str], int]

# A closing quote or bracket may follow the mark: 'He left." Then' cuts after the quote.
_SENTENCE_END = re.compile(r"(?:[.!?\u2026][\"')\]\u00bb\u201d\u2019]*\s+|\n)")
_SPACE = re.compile(r"\s+")


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_message(text: str, limit: int, measure: Measure = len) -> list[str]:
    """``text`` as parts of at most ``limit`` (by ``measure``), none empty; joining them with
    the whitespace that was cut gives ``text`` back, stripped."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    parts: list[str] = []
    rest = text.strip()
    while rest:
        if measure(rest) <= limit:
            parts.append(rest)
            break
        fits = _longest_prefix(rest, limit, measure)
        cut = _boundary(rest[:fits]) or fits
        part = rest[:cut].rstrip()
        if not part:  # only whitespace fitted: cannot happen after strip, but never loop
            part, cut = rest[:fits], fits
        parts.append(part)
        rest = rest[cut:].lstrip()
    return parts


def _longest_prefix(text: str, limit: int, measure: Measure) -> int:
    """How many characters of ``text`` fit in ``limit``; at least one, so splitting ends."""
    if measure is len:
        return max(1, min(len(text), limit))
    low, high = 1, min(len(text), limit)  # no character measures less than one
    while low < high:
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def _boundary(window: str) -> int | None:
    """Where to cut ``window`` (the part that fits): after its last sentence end in the second
    half, else at its last whitespace there; None when neither exists."""
    half = len(window) // 2
    for pattern in (_SENTENCE_END, _SPACE):
        ends = [m.end() for m in pattern.finditer(window) if m.end() > half]
        if pattern is _SPACE:
            ends = [m.start() for m in pattern.finditer(window) if m.start() > half]
        if ends:
            return ends[-1]
    return None
