"""Blocked words: one Aho-Corasick automaton over every list, whole words, case-insensitive.

    words = WordFilter({"block": ["kill switch"], "mask": ["darn"], "flag": ["refund"]})
    words.check("Darn, a REFUND")   # -> text "****, a REFUND", hits: darn (mask), refund (flag)
    masker = words.masker()         # streamed text: matches split across chunks are masked too
    masker.feed("da") + masker.feed("rn!") + masker.flush()   # -> "****!"

Actions: ``block`` (the caller refuses the text), ``mask`` (each match becomes asterisks) and
``flag`` (let through, reported in ``hits``). A word on several lists takes the strictest.
A match counts only as a whole word: its neighbours are not letters, digits or ``_``.
Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import ahocorasick


class Action(enum.StrEnum):
    BLOCK = "block"
    MASK = "mask"
    FLAG = "flag"


_STRICTNESS = {Action.FLAG: 0, Action.MASK: 1, Action.BLOCK: 2}


@dataclass(frozen=True, slots=True)
class Hit:
    word: str  # the listed word, lower-cased
    action: Action
    start: int
    end: int  # exclusive


@dataclass(frozen=True, slots=True)
class Verdict:
    text: str  # with ``mask`` matches replaced by asterisks
    hits: tuple[Hit, ...] = ()

    @property
    def blocked(self) -> tuple[Hit, ...]:
        return tuple(h for h in self.hits if h.action is Action.BLOCK)

    @property
    def flagged(self) -> tuple[Hit, ...]:
        return tuple(h for h in self.hits if h.action is Action.FLAG)


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _fold(text: str) -> str:
    # Lower-case without changing the length, so positions stay valid ("İ" lowers to two).
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class WordFilter:
    def __init__(self, lists: Mapping[str, Iterable[str]]) -> None:
        actions: dict[str, Action] = {}
        for name, words in lists.items():
            action = Action(name)
            for word in words:
                key = _fold(word.strip())
                if key and _STRICTNESS[action] >= _STRICTNESS[actions.get(key, Action.FLAG)]:
                    actions[key] = action
        self.size = len(actions)
        self.longest = max((len(w) for w in actions), default=0)
        self._automaton = ahocorasick.Automaton()
        for word, action in actions.items():
            self._automaton.add_word(word, (word, action))
        if actions:
            self._automaton.make_automaton()

    def __bool__(self) -> bool:
        return self.size > 0

    def scan(self, text: str, *, before: str = "", open_end: bool = False) -> list[Hit]:
        """Whole-word matches in ``text``. ``before`` is the character preceding it (streams);
        with ``open_end`` a match touching the end is left out (the next chunk decides)."""
        if not self.size or not text:
            return []
        folded = _fold(text)
        hits: list[Hit] = []
        for last, (word, action) in self._automaton.iter(folded):
            start, end = last + 1 - len(word), last + 1
            prev = text[start - 1] if start > 0 else before[-1:]
            if prev and _is_word_char(prev):
                continue
            if end < len(text):
                if _is_word_char(text[end]):
                    continue
            elif open_end:
                continue
            hits.append(Hit(word, action, start, end))
        return hits

    def check(self, text: str) -> Verdict:
        hits = self.scan(text)
        return Verdict(mask(text, hits), tuple(hits))

    def masker(self) -> StreamMasker:
        return StreamMasker(self)


def mask(text: str, hits: Iterable[Hit]) -> str:
    spans = [(h.start, h.end) for h in hits if h.action is not Action.FLAG]
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            if not chars[i].isspace():
                chars[i] = "*"
    return "".join(chars)


class StreamMasker:
    """Masks streamed text with a look-behind buffer: it holds back the last ``longest``
    characters (a match may still be arriving) and emits the rest masked."""

    def __init__(self, words: WordFilter) -> None:
        self._words = words
        self._held = ""
        self._before = ""  # the last character emitted: the left neighbour of what is held
        self.hits: list[Hit] = []

    def feed(self, chunk: str) -> str:
        if not self._words:
            return chunk
        text = self._held + chunk
        hits = self._words.scan(text, before=self._before, open_end=True)
        cut = max(0, len(text) - self._words.longest)
        moved = True
        while moved:  # a match straddling the cut moves it back to the match's start
            moved = False
            for hit in hits:
                if hit.start < cut < hit.end:
                    cut, moved = hit.start, True
        done = [h for h in hits if h.end <= cut]
        return self._emit(text, cut, done)

    def flush(self) -> str:
        text = self._held
        return self._emit(text, len(text), self._words.scan(text, before=self._before))

    def _emit(self, text: str, cut: int, hits: list[Hit]) -> str:
        self.hits.extend(hits)
        out = mask(text[:cut], hits)
        if cut:
            self._before = text[cut - 1]
        self._held = text[cut:]
        return out
