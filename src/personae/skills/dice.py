"""Dice: ``NdM+K`` (``/roll 2d6+1``, ``/roll d20``, ``/roll 3d8-2``)."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from personae.core.skills import (
    Intent,
    Keywords,
    Pattern,
    Skill,
    SkillContext,
    SkillResult,
    SlashCommand,
)
from personae.errors import InvalidInput

MAX_DICE = 100
MAX_SIDES = 1000
MAX_MODIFIER = 10_000
_EXPRESSION = re.compile(r"^(\d*)d(\d+)(?:([+-])(\d+))?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Dice:
    count: int
    sides: int
    modifier: int = 0

    def __str__(self) -> str:
        sign = f"{self.modifier:+d}" if self.modifier else ""
        return f"{self.count}d{self.sides}{sign}"


def parse_dice(expression: str) -> Dice:
    """``NdM+K`` as Dice; raises InvalidInput with the reason for anything else."""
    text = re.sub(r"\s+", "", expression) or "1d6"
    match = _EXPRESSION.match(text)
    if not match:
        raise InvalidInput(f"{expression!r} is not a dice roll; write NdM+K, like 2d6+1")
    count = int(match.group(1) or 1)
    sides = int(match.group(2))
    modifier = int(match.group(4) or 0) * (-1 if match.group(3) == "-" else 1)
    if not 1 <= count <= MAX_DICE:
        raise InvalidInput(f"roll between 1 and {MAX_DICE} dice, not {count}")
    if not 2 <= sides <= MAX_SIDES:
        raise InvalidInput(f"dice have between 2 and {MAX_SIDES} sides, not {sides}")
    if abs(modifier) > MAX_MODIFIER:
        raise InvalidInput(f"the modifier is at most {MAX_MODIFIER}, not {abs(modifier)}")
    return Dice(count, sides, modifier)


class DiceSkill(Skill):
    name = "dice"
    version = "1"
    description = "Roll dice written as NdM+K (N dice with M sides, plus K), e.g. 2d6+1."
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"expression": {"type": "string", "maxLength": 40}},
        "required": ["expression"],
        "additionalProperties": False,
    }
    triggers = (
        SlashCommand("roll"),
        SlashCommand("dice"),
        Pattern(r"\broll (?:an? |the )?(?P<expression>\d*d\d+(?:\s*[+-]\s*\d+)?)\b"),
        Keywords(("roll a die", "roll the dice", "roll a dice")),
    )

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.SystemRandom()

    def arguments(self, intent: Intent) -> dict[str, Any]:
        if "expression" in intent.groups:
            return {"expression": intent.groups["expression"]}
        return {"expression": intent.text if intent.is_command else ""}

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        dice = parse_dice(str(args["expression"]))
        rolls = [self._rng.randint(1, dice.sides) for _ in range(dice.count)]
        total = sum(rolls) + dice.modifier
        shown = " + ".join(map(str, rolls))
        if dice.modifier:
            shown += f" {'+' if dice.modifier > 0 else '-'} {abs(dice.modifier)}"
        text = f"🎲 {dice}: {shown} = {total}" if shown != str(total) else f"🎲 {dice}: {total}"
        data = {"expression": str(dice), "rolls": rolls, "modifier": dice.modifier, "total": total}
        return SkillResult(text=text, data=data)
