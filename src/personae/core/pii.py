"""PII redaction to reversible tokens, before text leaves for a backend over the network.

    redactor = Redactor(patterns={"TICKET": r"TCK-\\d{6}"})
    vault = redactor.vault()                    # one per turn: tokens are stable within it
    vault.redact("mail ann@example.org")        # -> "mail [EMAIL_1]"
    vault.restore("wrote to [EMAIL_1]")         # -> "wrote to ann@example.org"
    restorer = vault.restorer()                 # streamed text: a token split across chunks
    restorer.feed("to [EMA") + restorer.feed("IL_1].") + restorer.flush()

Built-in kinds: ``EMAIL``, ``IBAN`` (mod-97 checked), ``CARD`` (Luhn checked), ``IP`` (v4 and
v6), ``PHONE`` (9 to 15 digits, or any ``+``-prefixed international number of 7 or more), then
the configured patterns (kind name -> regular expression), in that order. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,5}"
    r"(?![ .-]?\d)(?!\w)"
)
_TOKEN = re.compile(r"\[([A-Z][A-Z0-9_]*_\d+)\]")
_PARTIAL_TOKEN = re.compile(r"\[[A-Z0-9_]*\Z")
_MAX_TOKEN = 40  # longer "[..." tails are not tokens; stop holding them back


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    iban = candidate.replace(" ", "")
    if not 15 <= len(iban) <= 34 or not iban.isalnum():
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _card(match: re.Match[str]) -> str | None:
    digits = re.sub(r"\D", "", match.group())
    return match.group() if 13 <= len(digits) <= 19 and luhn_valid(digits) else None


def _iban(match: re.Match[str]) -> str | None:
    # The pattern may swallow a following word of capitals: shorten it until it checks out.
    text = match.group()
    while len(text.replace(" ", "")) >= 15:
        if iban_valid(text):
            return text
        text = text[:-1].rstrip()
    return None


def _ipv6(match: re.Match[str]) -> str | None:
    try:
        ipaddress.IPv6Address(match.group())
    except ValueError:
        return None
    return match.group()


def _phone(match: re.Match[str]) -> str | None:
    text = match.group()
    digits = sum(ch.isdigit() for ch in text)
    international = text.startswith("+") and 7 <= digits <= 15
    return text if international or 9 <= digits <= 15 else None


def _whole(match: re.Match[str]) -> str | None:
    return match.group()


Check = Callable[[re.Match[str]], str | None]  # the part of the match that is PII, or None


@dataclass(frozen=True, slots=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    check: Check = _whole


BUILT_IN: tuple[Detector, ...] = (
    Detector("EMAIL", _EMAIL),
    Detector("IBAN", _IBAN, _iban),
    Detector("CARD", _CARD, _card),
    Detector("IP", _IPV4),
    Detector("IP", _IPV6, _ipv6),
    Detector("PHONE", _PHONE, _phone),
)


class CleanTexts:
    """Texts in which no detector found anything, the most recently seen of them, up to
    ``max_chars`` characters in all.

    Every turn sends the whole history again, and most of it has no PII: scanning it anew
    each turn was a third of a turn's CPU. Whether a text is clean depends on the text alone
    (a vault's tokens only ever replace what was found), so a remembered clean text is
    returned as it is, by every vault, exactly as a scan would."""

    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self._chars = 0
        self._texts: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, text: str) -> bool:
        if text in self._texts:
            self._texts.move_to_end(text)
            return True
        return False

    def add(self, text: str) -> None:
        if len(text) > self._max_chars // 4 or text in self._texts:
            return  # a text that would push out much of the rest is scanned each time
        self._texts[text] = None
        self._chars += len(text)
        while self._chars > self._max_chars:
            oldest, _ = self._texts.popitem(last=False)
            self._chars -= len(oldest)


class Redactor:
    """The detectors, compiled once; ``vault()`` starts a turn's token table. ``clean_chars``
    bounds the memory of texts found clean, shared by every vault (0: scan every time)."""

    def __init__(
        self, patterns: Mapping[str, str] | None = None, *, clean_chars: int = 4_000_000
    ) -> None:
        custom = [
            Detector(re.sub(r"[^A-Z0-9]", "_", kind.upper()), re.compile(regex))
            for kind, regex in (patterns or {}).items()
        ]
        self.detectors: tuple[Detector, ...] = (*BUILT_IN, *custom)
        self._clean = CleanTexts(clean_chars)

    def vault(self) -> PiiVault:
        return PiiVault(self.detectors, self._clean)


class PiiVault:
    """One turn's tokens: the same value always gets the same token, and tokens restore."""

    def __init__(self, detectors: Iterable[Detector], clean: CleanTexts | None = None) -> None:
        self._detectors = tuple(detectors)
        self._clean = clean if clean is not None else CleanTexts(0)
        self._tokens: dict[tuple[str, str], str] = {}  # (kind, original) -> token
        self._originals: dict[str, str] = {}  # token (without brackets) -> original
        self._counts: dict[str, int] = {}
        self._found = False  # did the current redact() replace anything?

    @property
    def originals(self) -> Mapping[str, str]:
        return self._originals

    def redact(self, text: str) -> str:
        if text in self._clean:
            return text
        original, self._found = text, False
        for detector in self._detectors:
            text = detector.pattern.sub(partial(self._replace, detector), text)
        if not self._found:
            self._clean.add(original)
        return text

    def _replace(self, detector: Detector, match: re.Match[str]) -> str:
        if _TOKEN.fullmatch(match.group()):  # already a token (a custom pattern may match one)
            return match.group()
        found = detector.check(match)
        if found is None:
            return match.group()
        rest = match.group()[len(found) :]
        self._found = True
        return self._token(detector.kind, found) + rest

    def _token(self, kind: str, original: str) -> str:
        key = (kind, original)
        if key not in self._tokens:
            self._counts[kind] = count = self._counts.get(kind, 0) + 1
            name = f"{kind}_{count}"
            self._tokens[key] = name
            self._originals[name] = original
        return f"[{self._tokens[key]}]"

    def restore(self, text: str) -> str:
        if not self._originals:
            return text
        return _TOKEN.sub(lambda m: self._originals.get(m.group(1), m.group()), text)

    def restorer(self) -> TokenRestorer:
        return TokenRestorer(self)


class TokenRestorer:
    """Restores tokens in streamed text, holding back a ``[TOKEN`` until its ``]`` arrives."""

    def __init__(self, vault: PiiVault) -> None:
        self._vault = vault
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        self._held = ""
        partial = _PARTIAL_TOKEN.search(text)
        if partial is not None and len(text) - partial.start() < _MAX_TOKEN:
            self._held = text[partial.start() :]
            text = text[: partial.start()]
        return self._vault.restore(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self._vault.restore(text)
