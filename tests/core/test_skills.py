"""SkillRunner: arguments checked against the schema, timeouts, concurrency, isolation."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from personae.core.schema import schema_errors
from personae.core.skills import Skill, SkillContext, SkillResult, SkillRunner
from personae.errors import InvalidInput

CONTEXT = SkillContext("sam", "aria", "conv_1", "/x")


class Scripted(Skill):
    name = "scripted"
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}},
        "additionalProperties": False,
    }

    def __init__(self, behaviour: str = "ok", delay_s: float = 0.0) -> None:
        self.behaviour, self.delay_s = behaviour, delay_s
        self.running = 0
        self.peak = 0

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay_s)
            if self.behaviour == "raise":
                raise RuntimeError("boom")
            if self.behaviour == "invalid":
                raise InvalidInput("n is too odd")
            return SkillResult(text=f"n={args.get('n')}")
        finally:
            self.running -= 1


def test_the_schema_subset() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string", "maxLength": 3, "pattern": "^x"},
            "b": {"type": "array", "items": {"type": "number"}},
            "c": {"enum": ["p", "q"]},
        },
        "required": ["a"],
        "additionalProperties": False,
    }
    assert schema_errors({"a": "xy", "b": [1, 2.5], "c": "p"}, schema) == []
    assert schema_errors({"a": "yyyy", "b": [True], "c": "r", "d": 1}, schema) == [
        "a: must have at most 3 characters",
        "a: does not match '^x'",
        "b[0]: expected number",
        "c: expected one of ['p', 'q']",
        "d: not allowed",
    ]
    assert schema_errors({}, schema) == ["a: required"]
    assert schema_errors([], schema) == ["(arguments): expected object"]


async def test_valid_arguments_run_the_skill() -> None:
    result = await SkillRunner().run(Scripted(), CONTEXT, {"n": 3})
    assert result.ok
    assert result.text == "n=3"


async def test_invalid_arguments_never_reach_the_skill() -> None:
    skill = Scripted("raise")
    result = await SkillRunner().run(skill, CONTEXT, {"n": -1, "m": 2})
    assert result.error == "invalid arguments: n: must be >= 0; m: not allowed"


async def test_an_invalid_input_error_is_shown() -> None:
    result = await SkillRunner().run(Scripted("invalid"), CONTEXT, {})
    assert result.error == "n is too odd"


async def test_a_skill_that_raises_gives_an_error_result() -> None:
    result = await SkillRunner().run(Scripted("raise"), CONTEXT, {})
    assert result.error == "an internal error"
    assert not result.ok


async def test_a_skill_that_hangs_times_out() -> None:
    result = await SkillRunner(timeout_s=0.05).run(Scripted(delay_s=30), CONTEXT, {})
    assert result.error == "no answer within 0.05 s"


async def test_concurrency_is_bounded() -> None:
    skill = Scripted(delay_s=0.02)
    runner = SkillRunner(max_concurrency=2)
    results = await asyncio.gather(*(runner.run(skill, CONTEXT, {"n": i}) for i in range(6)))
    assert all(r.ok for r in results)
    assert skill.peak == 2
