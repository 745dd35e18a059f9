"""The built-in skills, registered as any plugin registers its own."""

from __future__ import annotations

from personae.plugins.specs import RegisterSkill, hookimpl
from personae.skills.clock import TimeSkill
from personae.skills.dice import DiceSkill


@hookimpl
def register_skills(register: RegisterSkill) -> None:
    register(DiceSkill())
    register(TimeSkill())
