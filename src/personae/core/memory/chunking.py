"""Splitting long texts into overlapping chunks, so nothing is cut off or lost.

Chunks are spans of the original text (never rewritten), so a chunk quotes its source
exactly and can be cited by position. Two ways of counting: by words (an approximation of
tokens, for memory items and documents) and by a tokenizer's offsets (exact, for an embedder
with a hard input limit).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from personae.errors import InvalidInput

_WORD = re.compile(r"\S+")

#: About 1.3 MiniLM word pieces per English word: 150 words stay under its 256 pieces.
DEFAULT_MAX_WORDS = 150
DEFAULT_OVERLAP_WORDS = 25


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    start: int  # character offsets into the original text
    end: int
    index: int


def chunk_words(
    text: str,
    *,
    max_words: int = DEFAULT_MAX_WORDS,
    overlap: int = DEFAULT_OVERLAP_WORDS,
) -> list[Chunk]:
    """``text`` as chunks of at most ``max_words`` words, each starting ``overlap`` words
    before the previous one ended. A text that fits is one chunk; a blank one is none."""
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    return [
        Chunk(text[start:end], start, end, index)
        for index, (start, end) in enumerate(windows(spans, max_words, overlap))
    ]


def windows(spans: Sequence[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Character ranges covering consecutive ``spans`` (words or tokens, in order) ``size``
    at a time, consecutive windows sharing ``overlap`` spans. Every span is in some window."""
    if size < 1 or not 0 <= overlap < size:
        raise InvalidInput(f"need size >= 1 and 0 <= overlap < size, got {size}, {overlap}")
    ranges: list[tuple[int, int]] = []
    first = 0
    while first < len(spans):
        last = min(first + size, len(spans)) - 1
        ranges.append((spans[first][0], spans[last][1]))
        if last == len(spans) - 1:
            break
        first = last + 1 - overlap
    return ranges
