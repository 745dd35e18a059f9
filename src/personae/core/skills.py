"""Skills: actions a character may take for a user (roll dice, tell the time, ...).

A skill is a small object with a name, a version, a description, a JSON-Schema for its
arguments, triggers (how stage-1 intent detection recognises a request for it, see
``personae.core.intents``) and ``async run(context, args) -> SkillResult``. Skills come from
plugins through the ``register_skills`` hook; a character lists the ones it may use.

``SkillRunner`` runs them with a timeout, a concurrency limit and error isolation: a skill that
raises, hangs or gets bad arguments gives an error result and a log line, never a dead turn.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import structlog

from personae.core.schema import schema_errors
from personae.core.types import InboundMessage, OpenedTurn
from personae.errors import InvalidInput

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SlashCommand:
    """``/name rest of the line``: the rest is the argument text. The reply is the skill's."""

    name: str


@dataclass(frozen=True, slots=True)
class Keywords:
    """Any of these words or phrases (whole words, any case): the skill's data informs the
    model's answer."""

    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression searched in the message (case-insensitive); its named groups are
    offered to ``Skill.arguments``. Like keywords, the data informs the model's answer."""

    regex: str


Trigger = SlashCommand | Keywords | Pattern


@dataclass(frozen=True, slots=True)
class Intent:
    """What stage-1 detection found: which skill, by which trigger, with which text."""

    skill: str
    trigger: Trigger
    text: str  # the argument text: after the command, or the whole message
    groups: Mapping[str, str] = field(default_factory=dict)  # a pattern's named groups

    @property
    def is_command(self) -> bool:
        return isinstance(self.trigger, SlashCommand)


@dataclass(frozen=True, slots=True)
class SkillContext:
    user: str
    character_id: str
    conversation_id: str
    message: str  # the user's whole message
    timezone: str | None = None  # the user's IANA time zone, when known
    channel: str = "http"  # the transport or chat platform the message came through
    chat: str | None = None  # on a chat platform: the chat it came from
    #: The character's options for this skill (``skill_options`` below); set by the stage.
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, inbound: InboundMessage, opened: OpenedTurn) -> SkillContext:
        conversation = opened.conversation.id
        return cls(
            inbound.user,
            inbound.character_id,
            conversation,
            inbound.text,
            channel=inbound.channel,
            chat=inbound.chat,
        )


#: Where a character keeps per-skill options: ``extensions: {skill_options: {reminders:
#: {max_pending: 5}}}`` (``extensions`` rides along in cards too).
SKILL_OPTIONS = "skill_options"


def skill_options(extensions: Mapping[str, Any], skill: str) -> Mapping[str, Any]:
    """A character's options for ``skill`` (empty when it sets none or they are not a map)."""
    options = extensions.get(SKILL_OPTIONS)
    found = options.get(skill) if isinstance(options, Mapping) else None
    return found if isinstance(found, Mapping) else {}


@dataclass(frozen=True, slots=True)
class SkillResult:
    """``text`` is for the user, ``data`` for the prompt, ``state`` holds state effects
    (applied by the behaviour stage, once there is one). ``error`` is set when it failed."""

    text: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    state: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Skill(ABC):
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    parameters: ClassVar[Mapping[str, Any]] = {"type": "object"}  # JSON-Schema of the args
    triggers: ClassVar[tuple[Trigger, ...]] = ()

    def arguments(self, intent: Intent) -> dict[str, Any]:
        """The arguments for a detected intent; by default ``{"text": ...}`` plus the
        pattern's named groups."""
        return {"text": intent.text, **intent.groups}

    @abstractmethod
    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        """Do it. Raise ``InvalidInput`` for bad input: its message is shown to the user."""


def check_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", name):
        raise ValueError(f"skill name {name!r}: use a-z, 0-9, '_', '.' and '-'")
    return name


class SkillRunner:
    """Runs skills: validated arguments, at most ``max_concurrency`` at once, each bounded by
    ``timeout_s``; every failure becomes an error result."""

    def __init__(self, *, timeout_s: float = 5.0, max_concurrency: int = 8) -> None:
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_concurrency)

    async def run(
        self, skill: Skill, context: SkillContext, args: Mapping[str, Any]
    ) -> SkillResult:
        problems = schema_errors(dict(args), skill.parameters)
        if problems:
            return self._failed(skill, "invalid arguments: " + "; ".join(problems))
        try:
            async with self._slots, asyncio.timeout(self.timeout_s):
                result: object = await skill.run(context, args)
        except InvalidInput as exc:
            return self._failed(skill, str(exc))
        except TimeoutError:
            log.warning("skill timed out", skill=skill.name, timeout_s=self.timeout_s)
            return SkillResult(error=f"no answer within {self.timeout_s:g} s")
        except Exception:
            log.exception("skill failed", skill=skill.name)
            return SkillResult(error="an internal error")
        if not isinstance(result, SkillResult):
            log.error("skill returned no result", skill=skill.name)
            return SkillResult(error="an internal error")
        return result

    def _failed(self, skill: Skill, message: str) -> SkillResult:
        log.info("skill refused its input", skill=skill.name, error=message)
        return SkillResult(error=message)
