"""The skill stage of a turn: after the user's message is stored, before the prompt.

- A slash command (``/roll 2d6``) for a skill the character lists is answered by the skill: its
  text (or its error) is the reply, stored as the assistant's message with the model
  ``skill:<name>`` and sent as deltas and done like any reply. The model is not called.
- A keyword or pattern trigger runs the skill and its data (or its text, when it has no data)
  goes into the prompt as a system note just before the user's message; the model answers. A
  skill that fails there is left out (logged): the model answers as if nothing fired.
- Anything else (no trigger, a command for a skill the character does not list) goes on to the
  model unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, replace

import structlog

from personae.core.characters import Character
from personae.core.events import MessageDelta, MessageDone, TurnEvent
from personae.core.intents import detect_intent
from personae.core.ports import ConversationStore
from personae.core.prompt import AssembledPrompt
from personae.core.skills import Skill, SkillContext, SkillResult, SkillRunner, skill_options
from personae.core.types import ChatMessage, NewMessage, OpenedTurn, Role, Usage

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SkillOutcome:
    skill: str | None = None
    result: SkillResult | None = None
    reply: str | None = None  # answer with this instead of calling the model
    note: str | None = None  # add this system note to the prompt


NOTHING = SkillOutcome()


class SkillStage:
    def __init__(self, skills: Mapping[str, Skill], runner: SkillRunner | None = None) -> None:
        self.skills = dict(skills)
        self.runner = runner or SkillRunner()

    def for_character(self, character: Character) -> list[Skill]:
        return [self.skills[name] for name in character.skills if name in self.skills]

    async def step(self, character: Character, context: SkillContext) -> SkillOutcome:
        intent = detect_intent(context.message, self.for_character(character))
        if intent is None:
            return NOTHING
        skill = self.skills[intent.skill]
        context = replace(context, options=skill_options(character.extensions, skill.name))
        try:
            args = skill.arguments(intent)
        except Exception:  # a plugin's bug: no dead turn
            result = SkillResult(error="an internal error")
            log.exception("skill arguments failed", skill=skill.name)
        else:
            result = await self.runner.run(skill, context, args)
        if intent.is_command:
            reply = result.text if result.ok else f"Sorry, {skill.name} failed: {result.error}."
            return SkillOutcome(skill.name, result, reply=reply.strip() or "(no result)")
        if not result.ok:
            return SkillOutcome(skill.name, result)
        payload = json.dumps(dict(result.data), ensure_ascii=False) if result.data else result.text
        note = f"[skill {skill.name} result: {payload}]" if payload.strip() else None
        return SkillOutcome(skill.name, result, note=note)


def with_note(
    prompt: AssembledPrompt, note: str | None, count_tokens: Callable[[str], int]
) -> AssembledPrompt:
    """The prompt with a system note just before the last message (the user's)."""
    if not note:
        return prompt
    messages = list(prompt.messages)
    at = len(messages) - 1 if messages and messages[-1].role is Role.USER else len(messages)
    messages.insert(at, ChatMessage(Role.SYSTEM, note))
    return replace(prompt, messages=tuple(messages), tokens=prompt.tokens + count_tokens(note))


async def skill_reply(
    store: ConversationStore,
    opened: OpenedTurn,
    outcome: SkillOutcome,
    *,
    version: str | None,
    count_tokens: Callable[[str], int],
) -> AsyncGenerator[TurnEvent, None]:
    """Send and store a skill's reply as the turn's answer."""
    started = time.perf_counter()
    text = outcome.reply or ""
    conversation_id = opened.conversation.id
    yield MessageDelta(conversation_id, text)
    usage = Usage(0, count_tokens(text))
    reply = await store.append_message(
        conversation_id,
        NewMessage(
            role=Role.ASSISTANT,
            content=text,
            model=f"skill:{outcome.skill}",
            prompt_tokens=0,
            completion_tokens=usage.completion_tokens,
            latency_ms=(time.perf_counter() - started) * 1000,
            character_version=version,
        ),
    )
    yield MessageDone(
        conversation_id=conversation_id,
        message=reply,
        usage=usage,
        latency_ms=(time.perf_counter() - started) * 1000,
        time_to_first_token_ms=0.0,
        finish_reason="stop",
    )
