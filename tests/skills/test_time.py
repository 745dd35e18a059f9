"""The time skill: a fixed clock, the user's zone or one named, and a clear error."""

from __future__ import annotations

from datetime import UTC, datetime

from personae.core.intents import detect_intent
from personae.core.skills import SkillContext, SkillRunner
from personae.skills.clock import TimeSkill

NOW = datetime(2026, 7, 14, 12, 30, 5, tzinfo=UTC)
CONTEXT = SkillContext("sam", "assistant", "conv_1", "/time")


def skill() -> TimeSkill:
    return TimeSkill(clock=lambda: NOW)


async def test_time_in_a_named_zone() -> None:
    result = await skill().run(CONTEXT, {"timezone": "Europe/Paris"})
    assert result.text == "It is 14:30 on Tuesday, 14 July 2026 in Europe/Paris (UTC+02:00)."
    assert result.data == {
        "timezone": "Europe/Paris",
        "iso": "2026-07-14T14:30:05+02:00",
        "weekday": "Tuesday",
    }


async def test_the_users_zone_else_utc() -> None:
    in_tokyo = SkillContext("sam", "assistant", "conv_1", "/time", timezone="Asia/Tokyo")
    assert (await skill().run(in_tokyo, {})).data["iso"] == "2026-07-14T21:30:05+09:00"
    assert (await skill().run(CONTEXT, {})).text.endswith("in UTC (UTC+00:00).")


async def test_a_negative_offset() -> None:
    result = await skill().run(CONTEXT, {"timezone": "America/New_York"})
    assert result.text == "It is 08:30 on Tuesday, 14 July 2026 in America/New_York (UTC-04:00)."


async def test_an_unknown_zone_is_a_clear_error() -> None:
    runner = SkillRunner()
    for zone in ["Mars/Olympus", "../../etc/passwd"]:
        result = await runner.run(skill(), CONTEXT, {"timezone": zone})
        assert result.error == f"unknown time zone {zone!r}; use an IANA name like Europe/Paris"


def test_triggers_turn_into_arguments() -> None:
    time = skill()
    command = detect_intent("/time Europe/Paris", [time])
    assert command is not None
    assert time.arguments(command) == {"timezone": "Europe/Paris"}
    bare = detect_intent("/time", [time])
    assert bare is not None
    assert time.arguments(bare) == {}
    asked = detect_intent("Hey, what time is it?", [time])
    assert asked is not None
    assert not asked.is_command
    assert time.arguments(asked) == {}
