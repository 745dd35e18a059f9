"""When a reminder is due and what it says, read from what the user typed: pure, no clock.

    "in 10 minutes to stretch"     "10m stretch"         "1h 30m call back"
    "at 18:30 call mum"            "18:30 call mum"      "at 6:30pm", "tomorrow at 9 run"
    "to water the plants in 2 hours"   (the time may also come last)

A small grammar of our own rather than ``dateparser``: the phrases a chat command needs are
a handful, dateparser pulls in regex and language data for 200 locales (and its import alone
costs about a second), and it guesses at anything date-like ("remind me about May" would be a
date), where a reminder should rather refuse and say which forms it understands. Clock times
are read in the user's zone (``zone``) and returned in UTC; a time of day that has passed
today means tomorrow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from personae.errors import InvalidInput

MAX_TEXT_CHARS = 500
USAGE = "write it like '/remind 10m stretch', '/remind in 2 hours call mum' or '/remind 18:30 tea'"

_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_UNIT = "|".join(sorted(_UNITS, key=len, reverse=True))
# Digits may touch their unit ("10m", "1h30m"); words need a space ("an hour", not "and").
_AMOUNT = r"(?<![\d.])\d{1,6}\s*|(?<!\w)(?:an?|one|half\s+an?)\s+"
_PART = rf"(?:{_AMOUNT})(?:{_UNIT})(?![a-z])"
# One or more amounts: "1h30m", "1 hour and 30 minutes", "2h, 15m".
_DURATION = rf"(?:in\s+)?{_PART}(?:\s*(?:,|and)?\s*{_PART})*"
# A clock time needs "at", a colon or am/pm: "/remind 10 stretch" is refused, not 10:00.
_CLOCK = (
    r"(?:(?:today|tomorrow)\s+)?"
    r"(?:at\s+\d{1,2}(?::\d{2})?\s*(?:am|pm)?|\d{1,2}:\d{2}\s*(?:am|pm)?|\d{1,2}\s*(?:am|pm))"
    r"(?:\s+tomorrow)?"
)
_JOIN = r"(?:to|that|about|of)\s+"

_LEADING = [
    re.compile(rf"^(?P<when>{_DURATION})(?!\w)\s*[,:-]?\s*(?:{_JOIN})?(?P<what>.*)$", re.I | re.S),
    re.compile(rf"^(?P<when>{_CLOCK})(?!\w)\s*[,:-]?\s*(?:{_JOIN})?(?P<what>.*)$", re.I | re.S),
]
_TRAILING = [
    re.compile(rf"^(?:{_JOIN})?(?P<what>.+?)\s+(?P<when>{_DURATION})\s*[.!?]?$", re.I | re.S),
    re.compile(rf"^(?:{_JOIN})?(?P<what>.+?)\s+(?P<when>{_CLOCK})\s*[.!?]?$", re.I | re.S),
]
_ME = re.compile(r"^\s*(?:please\s+)?(?:remind\s+me\b\s*)?", re.I)
_PIECE = re.compile(rf"({_AMOUNT})({_UNIT})(?![a-z])", re.I)
_TIME_OF_DAY = re.compile(r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?", re.I)


@dataclass(frozen=True, slots=True)
class ReminderRequest:
    due_at: datetime  # UTC
    text: str  # what to remind of


def parse_reminder(
    text: str, *, now: datetime, zone: ZoneInfo, max_ahead: timedelta = timedelta(days=366)
) -> ReminderRequest:
    """``text`` (``10m stretch``, ``remind me at 18:30 to call mum``, ...) as a due time and a
    message; ``InvalidInput`` saying why for anything else."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    body = _ME.sub("", text.strip(), count=1).strip()
    if not body:
        raise InvalidInput(f"say when and what to remind you of; {USAGE}")
    for pattern in (*_LEADING, *_TRAILING):
        match = pattern.match(body)
        if match is None:
            continue
        what = match["what"].strip().rstrip(".!?").strip()
        if not what:
            raise InvalidInput(f"say what to remind you of; {USAGE}")
        if len(what) > MAX_TEXT_CHARS:
            raise InvalidInput(f"a reminder is at most {MAX_TEXT_CHARS} characters")
        when = match["when"]
        due = _after(when, now) if _PIECE.search(when) else _clock(when, now, zone)
        if due - now > max_ahead:
            raise InvalidInput(f"a reminder can be at most {max_ahead.days} days ahead")
        return ReminderRequest(due.astimezone(UTC), what)
    raise InvalidInput(f"I could not tell when; {USAGE}")


def _after(when: str, now: datetime) -> datetime:
    seconds = 0.0
    for amount, unit in _PIECE.findall(when):
        seconds += _amount(amount) * _UNITS[unit.lower()]
    if seconds < 1:
        raise InvalidInput("a reminder needs a time in the future")
    return now + timedelta(seconds=seconds)


def _amount(word: str) -> float:
    word = word.strip().lower()
    if word.startswith("half"):
        return 0.5
    return 1.0 if word in ("a", "an", "one") else float(word)


def _clock(when: str, now: datetime, zone: ZoneInfo) -> datetime:
    lowered = when.lower()
    found = _TIME_OF_DAY.search(lowered.replace("today", "").replace("tomorrow", ""))
    assert found is not None  # the grammar matched a time of day
    hour, minute = int(found[1]), int(found[2] or 0)
    meridiem = (found[3] or "").lower()
    if meridiem:
        if not 1 <= hour <= 12:
            raise InvalidInput(f"{hour}{meridiem} is not a time; use 1 to 12 with am/pm")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59:
        raise InvalidInput(f"{found[0].strip()} is not a time of day; use 00:00 to 23:59")
    local_now = now.astimezone(zone)
    day = local_now.date() + timedelta(days=1 if "tomorrow" in lowered else 0)
    due = datetime.combine(day, time(hour, minute), tzinfo=zone)
    if due <= local_now:
        if "today" in lowered:
            raise InvalidInput(f"{hour:02d}:{minute:02d} today has passed")
        due = datetime.combine(day + timedelta(days=1), time(hour, minute), tzinfo=zone)
    return due
