"""Lorebook keys, compiled once at load: plain text or a regular expression.

A key written ``/pattern/flags`` (as the community writes them, JavaScript style) is always a
regex; its flags, not the entry's ``case_sensitive``, decide case. A bare key is a regex when
the entry says ``use_regex`` (the V3 spec), except in entries SillyTavern wrote: it stamps
``use_regex: true`` on every entry while treating bare keys as plain text, so we do too. A
plain key matches as a substring (or a whole word when the entry asks), case-insensitively
unless the entry is case-sensitive; "case-insensitively" means as ``re.IGNORECASE`` compares
(``fold``). Every regex is compiled and checked by ``regex_guard`` here, so a bad one fails
the load with a clear message instead of failing every turn.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field

from personae.core.lorebook.errors import LorebookError
from personae.core.lorebook.regex_guard import UnsafePattern, check_pattern, required_literal

# ``/pattern/flags``; the flags JavaScript has, so a plain key such as ``/dev/null`` stays plain.
_SLASHED = re.compile(r"^/([\s\S]+)/([dgimsuvy]*)$")
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "g": 0, "u": 0, "d": 0}
_JS_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")  # JavaScript's (?<name>...) is Python's (?P<name>


def _fold_tables() -> tuple[dict[int, str], dict[int, int]] | None:
    """What ``re.IGNORECASE`` treats as the same letter beyond lower case (long s and s,
    dotless i and i, ...), as a table to one representative; None if Python does not say."""
    try:
        extra: dict[int, tuple[int, ...]] = importlib.import_module("re._casefix")._EXTRA_CASES
    except (ImportError, AttributeError):
        return None
    groups: dict[int, set[int]] = {}
    for char, others in extra.items():
        group = {char, *others}
        for member in list(group):
            group |= groups.get(member, set())
        for member in group:
            groups[member] = group
    canon = {member: min(group) for member, group in groups.items() if member != min(group)}
    # İ is the one letter whose lower case is two characters; ``re`` lowers it to i.
    return {0x130: "i"}, canon


_FOLD = _fold_tables()


def fold(text: str) -> str:
    """``text`` case-folded the way ``re.IGNORECASE`` compares, one character for one."""
    if _FOLD is None:
        return text.lower()
    before, canon = _FOLD
    return text.translate(before).lower().translate(canon)


@dataclass(frozen=True, slots=True)
class Key:
    """Equal keys match alike (``Dragon`` and ``dragon``, case-insensitive), so a book
    matches each only once."""

    source: str = field(compare=False)  # as written, for messages
    literal: str = ""  # a plain key: the text to find, folded unless case-sensitive
    case_sensitive: bool = False
    pattern: re.Pattern[str] | None = None
    # A regex: text every match contains (folded unless case-sensitive), so a text without
    # it is ruled out by ``in`` (nanoseconds) instead of a search (microseconds).
    needle: str = field(default="", compare=False)

    def found_in(self, text: str, folded: str) -> bool:
        """``folded`` is ``fold(text)``, made once for every key."""
        haystack = text if self.case_sensitive else folded
        if self.pattern is not None:
            return self.needle in haystack and self.pattern.search(text) is not None
        return self.literal in haystack


def compile_keys(
    texts: list[str] | tuple[str, ...],
    *,
    regex: bool,
    case_sensitive: bool,
    whole_words: bool,
    where: str,
) -> tuple[Key, ...]:
    """Compile ``texts``; empty keys are skipped (an empty key would match everything).
    Raises ``LorebookError`` naming ``where[index]``."""
    keys = []
    for index, text in enumerate(texts):
        key = compile_key(
            text,
            regex=regex,
            case_sensitive=case_sensitive,
            whole_words=whole_words,
            where=f"{where}.{index}",
        )
        if key is not None:
            keys.append(key)
    return tuple(keys)


def compile_key(
    text: str, *, regex: bool, case_sensitive: bool, whole_words: bool, where: str
) -> Key | None:
    if not text.strip():
        return None
    slashed = _SLASHED.match(text)
    if slashed is not None:
        return _regex_key(text, slashed.group(1), _flags(slashed.group(2), text, where), where)
    if regex:
        return _regex_key(text, text, 0 if case_sensitive else re.IGNORECASE, where)
    if whole_words:
        # A word boundary that also holds next to punctuation and at the ends of the text.
        body = rf"(?<!\w){re.escape(text)}(?!\w)"
        flags = 0 if case_sensitive else re.IGNORECASE
        return Key(text, case_sensitive=case_sensitive, pattern=re.compile(body, flags))
    literal = text if case_sensitive else fold(text)
    return Key(text, literal=literal, case_sensitive=case_sensitive)


def _flags(letters: str, text: str, where: str) -> int:
    flags = 0
    for letter in letters:
        if letter not in _FLAGS:
            raise LorebookError(f"{where}: {text!r}: the regex flag {letter!r} is not supported")
        flags |= _FLAGS[letter]
    return flags


def _regex_key(text: str, pattern: str, flags: int, where: str) -> Key:
    pattern = _JS_NAMED_GROUP.sub("(?P<", pattern)
    try:
        compiled = re.compile(pattern, flags)
        check_pattern(pattern, flags)
    except re.error as exc:
        raise LorebookError(f"{where}: {text!r} is not a valid regular expression: {exc}") from None
    except UnsafePattern as exc:
        raise LorebookError(
            f"{where}: {text!r} is refused because it could be catastrophically slow: {exc}"
        ) from None
    needle, ignore_case = required_literal(pattern, flags)
    if ignore_case:
        needle = "" if _FOLD is None else fold(needle)  # no table: no sound way to rule out
    return Key(text, case_sensitive=not ignore_case, pattern=compiled, needle=needle)
