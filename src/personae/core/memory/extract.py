"""The rule-based fact extractor: what a user says about themselves in plain patterns ("my
name is ...", "I live in ...", "my sister is ..."), found without a model, so even the small
embedded default remembers the basics. The LLM extractor of the memory issue adds to this.

Each rule reads one sentence; questions are skipped ("is my name Sam?" states nothing), and
so are negated statements a rule cannot read ("my name is not Sam").
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

# A sentence ends at . ! ? or a line break (a name like "St. Ives" is a loss we accept).
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
# One to three capitalised words: names of people and pets.
_NAME = r"(?P<value>[A-ZÀ-Þ][\w'\u2019-]*(?:\s+[A-ZÀ-Þ][\w'\u2019-]*){0,2})"
# The rest of a clause, up to punctuation or a joining word that starts a new clause.
_CLAUSE = r"(?P<value>[^,;:()]+?)(?=\s*(?:[,;:()]|\bbut\b|\bbecause\b|\band I\b|$))"
_I = r"(?:I|i)"
_IM = rf"(?:{_I}\s*['\u2019]?m|{_I} am)"

_RELATIONS = (
    "best friend|friend|boyfriend|girlfriend|partner|wife|husband|fiancée?|sister|brother"
    "|mother|mom|mum|father|dad|son|daughter|grandmother|grandma|grandfather|grandpa"
    "|aunt|uncle|cousin|niece|nephew|boss|roommate|dog|cat|puppy|kitten|horse|rabbit|parrot"
)
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH_NAME = "|".join(m[:3] + r"[a-z]*" for m in _MONTHS)


def _month(group: str) -> str:
    return f"(?P<{group}>{_MONTH_NAME})"


def _day(group: str) -> str:
    return rf"(?P<{group}>\d{{1,2}})(?:st|nd|rd|th)?"


class FactKind(enum.StrEnum):
    NAME = "name"
    LIKE = "like"
    DISLIKE = "dislike"
    LOCATION = "location"
    BIRTHDAY = "birthday"
    AGE = "age"
    RELATIONSHIP = "relationship"


@dataclass(frozen=True, slots=True)
class Fact:
    kind: FactKind
    value: str
    #: A sentence that states the fact on its own, for the profile and the memory store.
    text: str
    importance: float
    #: The relation for RELATIONSHIP facts ("sister"), else empty.
    subject: str = ""


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: FactKind
    pattern: re.Pattern[str]
    importance: float
    render: Callable[[re.Match[str]], tuple[str, str] | None]  # (value, text) or None


def _ci(pattern: str) -> str:
    return f"(?i:{pattern})"


def _name(m: re.Match[str]) -> tuple[str, str]:
    return m["value"], f"The user's name is {m['value']}."


def _lower_name(m: re.Match[str]) -> tuple[str, str]:
    name = m["value"][:1].upper() + m["value"][1:]
    return name, f"The user's name is {name}."


def _like(m: re.Match[str]) -> tuple[str, str]:
    return _clean(m["value"]), f"The user {m['verb'].lower()}s {_clean(m['value'])}."


def _dislike(m: re.Match[str]) -> tuple[str, str]:
    verb = m["verb"].lower()
    value = _clean(m["value"])
    if verb.startswith(("don", "do not")):
        return value, f"The user does not like {value}."
    return value, f"The user {'cannot stand' if 'stand' in verb else verb + 's'} {value}."


def _location(m: re.Match[str]) -> tuple[str, str]:
    return _clean(m["value"]), f"The user lives in {_clean(m['value'])}."


def _age(m: re.Match[str]) -> tuple[str, str] | None:
    years = int(m["value"])
    return (str(years), f"The user is {years} years old.") if 0 < years < 130 else None


def _relation(m: re.Match[str]) -> tuple[str, str]:
    return m["value"], f"The user's {m['relation'].lower()} is {m['value']}."


def _birthday(m: re.Match[str]) -> tuple[str, str] | None:
    day = _birthday_date(m)
    if day is None:
        return None
    return day, f"The user's birthday is on {_MONTHS[int(day[2:4]) - 1].title()} {int(day[5:])}."


def _birthday_date(m: re.Match[str]) -> str | None:
    """``--MM-DD`` (ISO 8601 without a year), or None for a date that does not exist."""
    groups = m.groupdict()
    if groups["iso"]:
        month, day = int(groups["iso_month"]), int(groups["iso_day"])
    else:
        name = (groups["month_first"] or groups["month_last"]).lower()
        month = 1 + [m[:3] for m in _MONTHS].index(name[:3])
        day = int(groups["day_last"] or groups["day_first"])
    try:
        date(2000, month, day)  # a leap year, so 29 February is a real birthday
    except ValueError:
        return None
    return f"--{month:02d}-{day:02d}"


_RULES = (
    _Rule(FactKind.NAME, re.compile(_ci(r"\bmy name(?:['\u2019]s| is)\s+") + _NAME), 0.95, _name),
    # "my name is sam" at the end of a sentence: a lower-case name is still a name there.
    _Rule(
        FactKind.NAME,
        re.compile(_ci(r"\bmy name(?:['\u2019]s| is)\s+(?P<value>[a-z][\w'\u2019-]*)\s*[.!]?\s*$")),
        0.95,
        _lower_name,
    ),
    _Rule(
        FactKind.NAME,
        re.compile(_ci(r"\b(?:call me|people call me|everyone calls me)\s+") + _NAME),
        0.9,
        _name,
    ),
    _Rule(
        FactKind.DISLIKE,
        re.compile(
            _ci(
                rf"\b{_I}\s+(?:really\s+|absolutely\s+)?(?P<verb>hate|dislike|detest|can['\u2019]?t"
                r" stand|cannot stand|don['\u2019]?t like|do not like)\s+"
            )
            + _CLAUSE
        ),
        0.7,
        _dislike,
    ),
    _Rule(
        FactKind.LIKE,
        re.compile(
            _ci(
                rf"\b{_I}\s+(?:really\s+|absolutely\s+|also\s+)?(?P<verb>like|love|enjoy|adore)"
                r"\s+"
            )
            + _CLAUSE
        ),
        0.7,
        _like,
    ),
    _Rule(
        FactKind.LOCATION,
        re.compile(
            _ci(rf"\b(?:{_I}\s+(?:now\s+)?live|{_IM} living|{_IM} based)\s+in\s+") + _CLAUSE
        ),
        0.8,
        _location,
    ),
    _Rule(
        FactKind.BIRTHDAY,
        re.compile(
            _ci(r"\bmy birthday(?:['\u2019]s| is)\s+(?:on\s+)?(?:the\s+)?")
            + _ci(
                rf"(?:{_month('month_first')}\s+{_day('day_last')}"
                rf"|{_day('day_first')}\s+(?:of\s+)?{_month('month_last')}"
                r"|(?P<iso>(?:\d{4}-)?(?P<iso_month>\d{2})-(?P<iso_day>\d{2})))\b"
            )
        ),
        0.9,
        _birthday,
    ),
    _Rule(
        FactKind.AGE,
        re.compile(_ci(rf"\b{_IM}\s+(?P<value>\d{{1,3}})\s*(?:years?|yrs?)\s+old\b")),
        0.8,
        _age,
    ),
    _Rule(
        FactKind.RELATIONSHIP,
        re.compile(
            _ci(
                rf"\bmy\s+(?P<relation>{_RELATIONS})(?:['\u2019]s name is|\s+is called|\s+is named"
                r"|\s+is|,)\s+"
            )
            + _NAME
        ),
        0.85,
        _relation,
    ),
)

_NEGATED = re.compile(_ci(r"^\s*(?:not|never)\b"))


def extract_facts(text: str) -> list[Fact]:
    """The facts ``text`` states about its author, in order, each at most once."""
    found_at: list[tuple[int, int, _Rule, re.Match[str]]] = []
    for sentence_match in _SENTENCE.finditer(text):
        sentence = sentence_match[0]
        if sentence.rstrip().endswith("?"):
            continue
        for order, rule in enumerate(_RULES):
            for match in rule.pattern.finditer(sentence):
                found_at.append((sentence_match.start() + match.start(), order, rule, match))
    facts: dict[tuple[FactKind, str, str], Fact] = {}
    for _, _, rule, match in sorted(found_at, key=lambda found: found[:2]):
        value_text = match.groupdict().get("value") or ""
        if _NEGATED.match(match.string[match.end() :]) or _NEGATED.match(value_text):
            continue
        rendered = rule.render(match)
        if rendered is None or not rendered[0]:
            continue
        value, statement = rendered
        relation = (match.groupdict().get("relation") or "").lower()
        key = (rule.kind, relation, value.casefold())
        facts.setdefault(key, Fact(rule.kind, value, statement, rule.importance, relation))
    return list(facts.values())


def _clean(value: str) -> str:
    return value.strip().rstrip(".!").strip()
