"""Reading when a reminder is due, and what it says: the forms users type, time zones, and
clear refusals for everything else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from personae.core.reminders import parse_reminder
from personae.errors import InvalidInput

NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)  # 14:00 in Paris (summer time)
PARIS = ZoneInfo("Europe/Paris")


def due(text: str, zone: ZoneInfo = PARIS, now: datetime = NOW) -> tuple[datetime, str]:
    found = parse_reminder(text, now=now, zone=zone)
    return found.due_at, found.text


@pytest.mark.parametrize(
    ("text", "after", "what"),
    [
        ("10m stretch", timedelta(minutes=10), "stretch"),
        ("in 10 minutes to stretch", timedelta(minutes=10), "stretch"),
        ("remind me in 10 minutes to stretch", timedelta(minutes=10), "stretch"),
        ("Remind me in 2 hours that the oven is on", timedelta(hours=2), "the oven is on"),
        ("1h30m call back", timedelta(hours=1, minutes=30), "call back"),
        ("1 hour and 30 minutes: tea", timedelta(hours=1, minutes=30), "tea"),
        ("in half an hour check the oven", timedelta(minutes=30), "check the oven"),
        ("in an hour, walk the dog", timedelta(hours=1), "walk the dog"),
        ("2 days, 3 hours - go", timedelta(days=2, hours=3), "go"),
        ("30s breathe", timedelta(seconds=30), "breathe"),
        ("remind me to water the plants in 2 hours", timedelta(hours=2), "water the plants"),
        ("to stand up in 45 mins.", timedelta(minutes=45), "stand up"),
    ],
)
def test_a_duration_counts_from_now(text: str, after: timedelta, what: str) -> None:
    assert due(text) == (NOW + after, what)


@pytest.mark.parametrize(
    ("text", "local", "what"),
    [
        ("at 18:30 call mum", datetime(2026, 7, 14, 18, 30), "call mum"),
        ("18:30 call mum", datetime(2026, 7, 14, 18, 30), "call mum"),
        ("at 6:30pm walk", datetime(2026, 7, 14, 18, 30), "walk"),
        ("at 6pm: walk", datetime(2026, 7, 14, 18, 0), "walk"),
        ("remind me to call mum at 18:00", datetime(2026, 7, 14, 18, 0), "call mum"),
        ("tomorrow at 9 run", datetime(2026, 7, 15, 9, 0), "run"),
        # 11:00 has passed today (it is 14:00 in Paris): tomorrow's.
        ("at 11:00 water", datetime(2026, 7, 15, 11, 0), "water"),
        ("12am sleep", datetime(2026, 7, 15, 0, 0), "sleep"),
    ],
)
def test_a_clock_time_is_read_in_the_users_zone(text: str, local: datetime, what: str) -> None:
    assert due(text) == (local.replace(tzinfo=PARIS).astimezone(UTC), what)


def test_the_same_clock_time_differs_by_zone() -> None:
    in_paris, _ = due("at 18:30 tea", PARIS)
    in_utc, _ = due("at 18:30 tea", ZoneInfo("UTC"))
    assert in_utc - in_paris == timedelta(hours=2)
    assert in_utc.tzinfo is UTC


def test_a_clock_time_across_a_daylight_saving_change() -> None:
    # The night clocks go back in Paris: "at 09:00" tomorrow is UTC+1, not today's UTC+2.
    evening = datetime(2026, 10, 24, 20, 0, tzinfo=UTC)
    found, _ = due("at 09:00 breakfast", now=evening)
    assert found == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "say when and what"),
        ("remind me", "say when and what"),
        ("in 10 minutes", "say what to remind you of"),
        ("10 stretch", "could not tell when"),  # a bare number is neither a time nor a span
        ("about the meeting", "could not tell when"),
        ("10 months to renew", "could not tell when"),
        ("at 25:00 x", "not a time of day"),
        ("at 13pm x", "not a time"),
        ("today at 09:00 x", "has passed"),
        ("in 0 minutes x", "in the future"),
        ("in 400 days x", "at most 366 days ahead"),
    ],
)
def test_anything_else_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        due(text)


def test_a_long_text_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at most 500 characters"):
        due("10m " + "x" * 501)


def test_now_must_know_its_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_reminder("10m x", now=datetime(2026, 7, 14, 12, 0), zone=PARIS)
