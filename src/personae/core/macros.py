"""Text macros in character definitions (the Character Card specs' "curly braced syntax").

Expanded, case-insensitively, in this order:

1. ``{{original}}``: the default text a character's own system prompt or post-history
   instructions replace (empty elsewhere), so a card can extend the default instead of
   losing it;
2. comments: ``{{// text}}``, ``{{comment: text}}`` and ``{{hidden_key: text}}`` are removed;
3. names: ``{{char}}``, ``<BOT>``, ``<CHAR>`` (the nickname when set, else the name) and
   ``{{user}}``, ``<USER>``;
4. functions, innermost first so they nest: ``{{random:a,b,c}}`` (also ``{{random::a::b}}``;
   ``\\,`` escapes a comma), ``{{pick:...}}`` (the same choice every time for the same text and
   ``pick_seed``, e.g. a conversation id), ``{{roll:NdM+K}}`` / ``{{roll:dM}}`` / ``{{roll:M}}``
   and ``{{reverse:text}}``.

A malformed or unknown macro is left as written, so its author can see it. Randomness comes
from the ``random.Random`` the caller passes (seed it for reproducible prompts); ``{{pick}}``
never uses it, because its choice must not change from one turn to the next.
"""

from __future__ import annotations

import hashlib
import random
import re

MAX_DICE = 100  # {{roll:500d6}} would be a denial of service in a prompt
MAX_SIDES = 1_000_000
MAX_NESTING = 8  # passes over nested functions before giving up

_ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)
# A comment may hold macros of its own ("{{// {{char}} is shy}}"): one level of nesting.
_COMMENT = re.compile(
    r"\{\{\s*(?://|comment\s*:|hidden_key\s*:)(?:\{\{[^{}]*\}\}|[^{]|\{(?!\{))*?\}\}",
    re.IGNORECASE,
)
_NAME = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER|CHAR)>", re.IGNORECASE)
# The body holds no braces, so the innermost function of a nest matches first.
_FUNCTION = re.compile(
    r"\{\{\s*(random|pick|roll|reverse)(::?|\s+)([^{}]*)\}\}", re.IGNORECASE | re.DOTALL
)
_DICE = re.compile(r"^(\d*)d(\d+)\s*([+-]\s*\d+)?$", re.IGNORECASE)
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


def expand(
    text: str,
    *,
    char: str,
    user: str,
    original: str = "",
    rng: random.Random | None = None,
    pick_seed: str = "",
) -> str:
    """Expand every macro in ``text``. ``char`` is the name ``{{char}}`` stands for (a
    character's nickname when it has one: ``Character.char_name``)."""
    if "{{" not in text and "<" not in text:
        return text  # the common case: plain text
    out = _ORIGINAL.sub(lambda _: original, text)
    out = _COMMENT.sub("", out)
    out = _NAME.sub(lambda m: char if (m.group(1) or m.group(2)).lower() != "user" else user, out)
    functions = _Functions(rng, pick_seed, text)
    for _ in range(MAX_NESTING):
        expanded = _FUNCTION.sub(functions, out)
        if expanded == out:
            break
        out = expanded
    return out


class _Functions:
    """Replaces one function macro; counts ``{{pick}}`` occurrences so each has its own seed."""

    def __init__(self, rng: random.Random | None, pick_seed: str, text: str) -> None:
        self._rng = rng
        self._pick_seed = pick_seed
        self._text = text
        self._picks = 0

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random()
        return self._rng

    def __call__(self, match: re.Match[str]) -> str:
        name, separator, body = match.group(1).lower(), match.group(2), match.group(3)
        if name == "reverse":
            return body[::-1]
        if name == "roll":
            rolled = roll(body, self.rng)
            return match.group(0) if rolled is None else str(rolled)
        options = _options(body, separator)
        if name == "random":
            return self.rng.choice(options)
        # A stable hash (not hash(), which is salted per process) so every process and every
        # turn picks the same option for the same conversation.
        self._picks += 1
        key = f"{self._pick_seed}\x00{self._text}\x00{self._picks}".encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
        return random.Random(seed).choice(options)


def _options(body: str, separator: str) -> list[str]:
    if separator.strip() == "::" or "::" in body:
        return [part.strip() for part in body.split("::")]
    return [part.replace("\\,", ",").strip() for part in _UNESCAPED_COMMA.split(body)]


def roll(spec: str, rng: random.Random) -> int | None:
    """The total of a dice roll written ``NdM+K``, ``dM`` or ``M``; None if malformed or over
    the limits (``MAX_DICE`` dice of ``MAX_SIDES`` sides)."""
    spec = spec.strip()
    if spec.isdigit():
        count, sides, modifier = 1, int(spec), 0
    elif found := _DICE.match(spec):
        count = int(found.group(1) or 1)
        sides = int(found.group(2))
        modifier = int((found.group(3) or "0").replace(" ", ""))
    else:
        return None
    if not (1 <= count <= MAX_DICE and 1 <= sides <= MAX_SIDES):
        return None
    return sum(rng.randint(1, sides) for _ in range(count)) + modifier
