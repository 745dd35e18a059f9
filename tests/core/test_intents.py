"""Stage-1 intent detection: slash commands, keywords and patterns, over a character's skills."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from personae.core.intents import detect_intent
from personae.core.skills import Keywords, Pattern, Skill, SkillContext, SkillResult, SlashCommand


class Probe(Skill):
    name = "probe"
    triggers = (
        SlashCommand("probe"),
        Keywords(("scan the sky", "sensors")),
        Pattern(r"\bsector (?P<sector>\d+)\b"),
    )

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        return SkillResult(text="ok")


class Other(Skill):
    name = "other"
    triggers = (SlashCommand("other"), Keywords(("sensors",)))

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        return SkillResult(text="other")


SKILLS = [Probe(), Other()]


def test_a_slash_command_names_its_skill_and_passes_the_rest_of_the_line() -> None:
    intent = detect_intent("  /probe  deep field \n now", SKILLS)
    assert intent is not None
    assert (intent.skill, intent.text, intent.is_command) == ("probe", "deep field \n now", True)
    assert detect_intent("/PROBE", SKILLS) is not None


def test_a_command_needs_a_word_boundary_and_a_known_skill() -> None:
    assert detect_intent("/probed x", SKILLS) is None
    assert detect_intent("/unknown thing", SKILLS) is None
    assert detect_intent("please /probe", SKILLS) is None  # a command starts the message


def test_keywords_match_whole_words_in_any_case() -> None:
    intent = detect_intent("Could you SCAN THE SKY for me?", SKILLS)
    assert intent is not None
    assert intent.skill == "probe"
    assert not intent.is_command
    assert intent.text == "Could you SCAN THE SKY for me?"
    assert detect_intent("scan the skyline", SKILLS) is None


def test_a_pattern_offers_its_named_groups() -> None:
    intent = detect_intent("what is in Sector 7?", SKILLS)
    assert intent is not None
    assert dict(intent.groups) == {"sector": "7"}


def test_the_characters_order_decides_and_commands_win() -> None:
    first = detect_intent("check the sensors", SKILLS)
    assert first is not None
    assert first.skill == "probe"
    reversed_order = detect_intent("check the sensors", list(reversed(SKILLS)))
    assert reversed_order is not None
    assert reversed_order.skill == "other"
    command = detect_intent("/other sensors", SKILLS)
    assert command is not None
    assert command.skill == "other"
    assert command.is_command


def test_nothing_fires_without_skills_or_triggers() -> None:
    assert detect_intent("/probe", []) is None
    assert detect_intent("hello there", SKILLS) is None
