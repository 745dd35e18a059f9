"""The dice skill: NdM+K with bounds, a seeded RNG, and clear errors."""

from __future__ import annotations

import random
import re

import pytest

from personae.core.intents import detect_intent
from personae.core.skills import SkillContext, SkillRunner
from personae.errors import InvalidInput
from personae.skills.dice import Dice, DiceSkill, parse_dice

CONTEXT = SkillContext("sam", "bram", "conv_1", "/roll")


@pytest.mark.parametrize(
    ("text", "dice"),
    [
        ("2d6+1", Dice(2, 6, 1)),
        ("d20", Dice(1, 20, 0)),
        (" 3 D8 - 2 ", Dice(3, 8, -2)),
        ("", Dice(1, 6, 0)),
        ("100d1000+10000", Dice(100, 1000, 10000)),
    ],
)
def test_expressions_parse(text: str, dice: Dice) -> None:
    assert parse_dice(text) == dice


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2x6", "is not a dice roll; write NdM+K"),
        ("2d6+", "is not a dice roll"),
        ("0d6", "between 1 and 100 dice, not 0"),
        ("101d6", "between 1 and 100 dice, not 101"),
        ("1d1", "between 2 and 1000 sides, not 1"),
        ("1d1001", "between 2 and 1000 sides, not 1001"),
        ("1d6+10001", "at most 10000, not 10001"),
    ],
)
def test_bad_expressions_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_dice(text)


async def test_a_roll_with_an_injected_rng() -> None:
    skill = DiceSkill(random.Random(7))
    expected = random.Random(7)
    rolls = [expected.randint(1, 6) for _ in range(2)]
    result = await skill.run(CONTEXT, {"expression": "2d6+1"})
    assert result.data == {
        "expression": "2d6+1",
        "rolls": rolls,
        "modifier": 1,
        "total": sum(rolls) + 1,
    }
    assert result.text == f"🎲 2d6+1: {rolls[0]} + {rolls[1]} + 1 = {sum(rolls) + 1}"


async def test_a_single_die_shows_just_the_total() -> None:
    result = await DiceSkill(random.Random(1)).run(CONTEXT, {"expression": "d20"})
    assert result.text == f"🎲 1d20: {result.data['total']}"


async def test_every_roll_is_within_bounds() -> None:
    result = await DiceSkill(random.Random(3)).run(CONTEXT, {"expression": "100d4-3"})
    assert all(1 <= r <= 4 for r in result.data["rolls"])
    assert result.data["total"] == sum(result.data["rolls"]) - 3


async def test_bad_input_through_the_runner_is_an_error_result() -> None:
    result = await SkillRunner().run(DiceSkill(), CONTEXT, {"expression": "lots"})
    assert result.error == "'lots' is not a dice roll; write NdM+K, like 2d6+1"


def test_triggers_turn_into_arguments() -> None:
    skill = DiceSkill()
    for text, expression in [
        ("/roll 2d6+1", "2d6+1"),
        ("/dice", ""),
        ("I roll a d20 to sneak", "d20"),
        ("let me roll the dice", ""),
    ]:
        intent = detect_intent(text, [skill])
        assert intent is not None, text
        assert skill.arguments(intent) == {"expression": expression}
