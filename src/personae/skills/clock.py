"""The current time in the user's time zone (``/time Europe/Paris``; UTC when none is known)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from personae.core.skills import Intent, Keywords, Skill, SkillContext, SkillResult, SlashCommand
from personae.errors import InvalidInput


def find_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # ValueError: not even a key
        raise InvalidInput(
            f"unknown time zone {name!r}; use an IANA name like Europe/Paris"
        ) from exc


class TimeSkill(Skill):
    name = "time"
    version = "1"
    description = "The current date and time in a time zone (the user's, else UTC)."
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"timezone": {"type": "string", "maxLength": 64}},
        "additionalProperties": False,
    }
    triggers = (
        SlashCommand("time"),
        Keywords(("what time is it", "what's the time", "current time", "today's date")),
    )

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    def arguments(self, intent: Intent) -> dict[str, Any]:
        zone = intent.text.strip() if intent.is_command else ""
        return {"timezone": zone} if zone else {}

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        name = str(args.get("timezone") or context.timezone or "UTC")
        zone = find_zone(name)
        now = self._clock().astimezone(zone)
        offset = now.strftime("%z")
        offset = f"UTC{offset[:3]}:{offset[3:]}"
        text = f"It is {now:%H:%M} on {now:%A}, {now.day} {now:%B %Y} in {name} ({offset})."
        data = {"timezone": name, "iso": now.isoformat(timespec="seconds"), "weekday": f"{now:%A}"}
        return SkillResult(text=text, data=data)
