"""The functions an expression may call: a whitelist, each with its type rule and its code."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from personae.core.behaviour.expressions import BOOL, FLOAT, INT, INT_LIMIT, Type, Value


@dataclass(frozen=True, slots=True)
class Function:
    """A whitelisted function: ``typed`` checks the argument types and gives the result's;
    ``run`` gets the evaluated arguments and the scope (``mentions`` reads ``text``)."""

    signature: str
    typed: Callable[[Sequence[Type]], Type | str]  # the result's type, or what is wrong
    run: Callable[[Sequence[Value], Mapping[str, Value]], Value]


def _mentions_type(args: Sequence[Type]) -> Type | str:
    if not args or not all(a.textual for a in args):
        return "give it one or more words or phrases"
    return BOOL


def _mentions(args: Sequence[Value], scope: Mapping[str, Value]) -> bool:
    text = str(scope.get("text", ""))
    return any(_word_pattern(str(word)).search(text) for word in args if str(word).strip())


_WORD_PATTERNS: dict[str, re.Pattern[str]] = {}


def _word_pattern(word: str) -> re.Pattern[str]:
    pattern = _WORD_PATTERNS.get(word)
    if pattern is None:
        # Whole words, any case; a bounded cache (words come from character files).
        pattern = re.compile(rf"(?<!\w){re.escape(word.strip())}(?!\w)", re.IGNORECASE)
        if len(_WORD_PATTERNS) < 4096:
            _WORD_PATTERNS[word] = pattern
    return pattern


def _numeric_result(count: int | None) -> Callable[[Sequence[Type]], Type | str]:
    def typed(args: Sequence[Type]) -> Type | str:
        if count is not None and len(args) != count:
            return f"give it {count} number{'s' if count > 1 else ''}"
        if count is None and len(args) < 2:
            return "give it two or more numbers"
        if not all(a.numeric for a in args):
            return "its arguments must be numbers"
        return INT if all(a.kind == "int" for a in args) else FLOAT

    return typed


def _round_type(args: Sequence[Type]) -> Type | str:
    return INT if len(args) == 1 and args[0].numeric else "give it one number"


def _clamp(args: Sequence[Value], _: Mapping[str, Value]) -> Value:
    value, low, high = (as_number(a) for a in args)
    return bounded(max(low, min(value, high)) if low <= high else low)


def as_number(value: Value) -> int | float:
    assert isinstance(value, int | float)  # the type check saw to it
    return value


FUNCTIONS: Mapping[str, Function] = {
    "mentions": Function("mentions(word, ...)", _mentions_type, _mentions),
    "clamp": Function("clamp(x, low, high)", _numeric_result(3), _clamp),
    "min": Function("min(a, b, ...)", _numeric_result(None), lambda a, _: min(map(as_number, a))),
    "max": Function("max(a, b, ...)", _numeric_result(None), lambda a, _: max(map(as_number, a))),
    "abs": Function("abs(x)", _numeric_result(1), lambda a, _: abs(as_number(a[0]))),
    "round": Function("round(x)", _round_type, lambda a, _: bounded(round(as_number(a[0])))),
}


def bounded(value: int | float) -> int | float:
    if isinstance(value, int):
        return max(-INT_LIMIT, min(value, INT_LIMIT))
    if math.isnan(value):
        return 0.0
    return max(-1e300, min(value, 1e300))
