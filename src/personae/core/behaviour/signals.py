"""What a behaviour machine knows about a turn: the user's text, a coarse intent, the skill a
trigger named, and the sentiment. Turn counters come from the machine's own state.

``intent`` is a rule-based dialogue act (first match wins, in ``INTENTS`` order): a slash
``command``, an ``apology``, ``thanks``, a ``greeting``, a ``farewell``, a ``question``, else
a ``statement``. ``skill`` is the skill a trigger of the character's skills fires on
(``core/intents.py``, the same detection the skill stage uses), or "".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from personae.core.behaviour.sentiment import sentiment
from personae.core.intents import detect_intent
from personae.core.skills import Skill

INTENTS = ("command", "apology", "thanks", "greeting", "farewell", "question", "statement")

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("command", re.compile(r"^\s*/\w")),
    ("apology", re.compile(r"\b(sorry|apologi[sz]e|my bad|forgive me|pardon me)\b", re.I)),
    ("thanks", re.compile(r"\b(thanks?|thank you|thx|ty|cheers|grateful)\b", re.I)),
    (
        "greeting",
        re.compile(
            r"^\W*(hi|hello|hey|hiya|howdy|greetings|yo|good (morning|afternoon|evening))\b",
            re.I,
        ),
    ),
    (
        "farewell",
        re.compile(r"\b(bye|goodbye|farewell|see you|see ya|good night|gotta go|later)\W*$", re.I),
    ),
    (
        "question",
        re.compile(
            r"\?\s*$|^\W*(who|what|when|where|why|how|which|do|does|did|is|are|can|could|"
            r"would|will|should)\b",
            re.I,
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class TurnSignals:
    text: str
    intent: str  # one of INTENTS
    sentiment: float  # -1..1, see sentiment.py
    skill: str = ""  # the skill a trigger named, or ""


def classify_intent(text: str) -> str:
    for intent, rule in _RULES:
        if rule.search(text):
            return intent
    return "statement"


def read_signals(text: str, skills: Iterable[Skill] = ()) -> TurnSignals:
    found = detect_intent(text, skills)
    return TurnSignals(
        text=text,
        intent=classify_intent(text),
        sentiment=sentiment(text),
        skill=found.skill if found else "",
    )
