"""The behaviour stage of a turn: after the user's message is stored, before the prompt.

    read the state (store) -> signals of the message -> step -> write it with the version read
      -> the skills the transition triggers -> a note for the prompt, a StateChanged event

The state is the conversation's versioned state under ``behaviour:<character id>``. A write
that finds the version moved (another process stepped the same conversation) reads again and
steps again, a bounded number of times. A turn that is discarded afterwards (over HTTP, when
the backend fails before replying) takes its step back with ``undo``, so a resent message is
not counted twice.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from personae.core.behaviour.machine import StepResult, restore, step
from personae.core.behaviour.signals import read_signals
from personae.core.characters import Character
from personae.core.events import StateChanged
from personae.core.macros import expand
from personae.core.ports import ConversationStore, VersionedState
from personae.core.skill_stage import SkillStage
from personae.core.skills import SkillContext
from personae.core.types import InboundMessage, OpenedTurn
from personae.errors import StateConflict

log = structlog.get_logger(__name__)

ATTEMPTS = 3  # reads and steps before a conflicting write fails the turn


def state_key(character_id: str) -> str:
    return f"behaviour:{character_id}"


@dataclass(frozen=True, slots=True)
class BehaviourTurn:
    """What the stage did this turn: the step, what it wrote over, and what goes out."""

    result: StepResult
    written: VersionedState
    previous: Mapping[str, Any]  # the state as it was, for ``undo``
    event: StateChanged | None  # None when nothing changed
    note: str | None  # instructions, a greeting, skill results: for the prompt


class BehaviourStage:
    def __init__(
        self, store: ConversationStore, skills: SkillStage | None = None, *, user_name: str
    ) -> None:
        self._store = store
        self._skills = skills or SkillStage({})
        self._user_name = user_name

    async def step(
        self, character: Character, opened: OpenedTurn, inbound: InboundMessage
    ) -> BehaviourTurn | None:
        """Step the character's machine for this turn; None if it has no behaviour."""
        spec = character.machine
        if spec is None:
            return None
        conversation = opened.conversation.id
        key = state_key(character.id)
        signals = read_signals(inbound.text, self._skills.for_character(character))
        for attempt in range(1, ATTEMPTS + 1):
            stored = await self._store.get_state(conversation, key)
            state, fixed = restore(spec, None if stored is None else stored.value)
            if fixed:
                log.info("behaviour state restored", character=character.id, fixed=fixed)
            result = step(spec, state, signals)
            try:
                written = await self._store.put_state(
                    conversation,
                    key,
                    result.state.as_json(),
                    None if stored is None else stored.version,
                )
            except StateConflict:
                if attempt == ATTEMPTS:
                    raise
                continue
            previous = state.as_json()
            note = await self._note(character, opened, inbound, result)
            event = _event(conversation, character.id, result) if result.changes else None
            return BehaviourTurn(result, written, previous, event, note)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def undo(self, turn: BehaviourTurn) -> None:
        """Put back the state this turn's step replaced (unless someone moved it since)."""
        written = turn.written
        try:
            await self._store.put_state(
                written.conversation_id, written.key, turn.previous, written.version
            )
        except StateConflict:
            log.warning("behaviour step not undone: the state moved", key=written.key)

    async def _note(
        self,
        character: Character,
        opened: OpenedTurn,
        inbound: InboundMessage,
        result: StepResult,
    ) -> str | None:
        parts = list(result.instructions)
        if result.greeting is not None and result.greeting < len(character.greetings):
            greeting = character.greetings[result.greeting]
            parts.append(f"{{{{char}}}} greets {{{{user}}}} again with: {greeting}")
        seed = opened.conversation.id
        lines = [
            expand(
                text,
                char=character.char_name,
                user=self._user_name,
                rng=random.Random(f"{seed}:{result.state.turn}"),
                pick_seed=seed,
            ).strip()
            for text in parts
        ]
        lines.extend(await self._run_skills(character, opened, inbound, result))
        return "\n".join(line for line in lines if line) or None

    async def _run_skills(
        self, character: Character, opened: OpenedTurn, inbound: InboundMessage, result: StepResult
    ) -> list[str]:
        notes: list[str] = []
        for trigger in result.skills:
            skill = self._skills.skills.get(trigger.skill)
            if skill is None:  # listed by the character, not registered on this server
                log.warning("behaviour names an unknown skill", skill=trigger.skill)
                continue
            context = SkillContext.of(inbound, opened)
            outcome = await self._skills.runner.run(skill, context, trigger.args)
            if not outcome.ok:
                continue  # the runner logged it; the model answers as if nothing fired
            if outcome.data:
                payload = json.dumps(dict(outcome.data), ensure_ascii=False)
                notes.append(f"[skill {skill.name} result: {payload}]")
            elif outcome.text.strip():
                notes.append(f"[skill {skill.name} result: {outcome.text}]")
        return notes


def _event(conversation_id: str, character_id: str, result: StepResult) -> StateChanged:
    changes = tuple({"name": c.name, "old": c.old, "new": c.new} for c in result.changes)
    state = result.state.as_json()
    return StateChanged(
        conversation_id,
        character_id,
        changes,
        {"state": state["state"], "variables": state["variables"], "turn": state["turn"]},
    )
