"""A group turn: one user message answered by several characters, one after another.

    lock the group's conversation -> store the user message once -> ack
      -> the speakers ``core/group.py`` picks, at most ``max_replies``, each in turn:
         its behaviour step -> the shared history as it sees it (core/prompt_stage.py)
         -> its reply (core/reply_stage.py), stored with ``speaker`` -> done

Each reply is an ordinary one: its own persona, backend and behaviour state, streamed by the
same loop as a one-to-one reply and reported as a turn of its own. The conversation is locked,
not (user, character): several users write to a group.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import replace

import structlog

from personae.core.behaviour.stage import BehaviourStage
from personae.core.catalog import CharacterCatalog
from personae.core.events import MessageAck, TurnEvent
from personae.core.group import Member, next_speakers, nudge
from personae.core.observe import TurnTally
from personae.core.overrides import generation_params
from personae.core.ports import ConversationLock, ConversationStore
from personae.core.prompt_stage import PromptStage
from personae.core.reply_stage import ReplyStage
from personae.core.routing import ModelRoutes
from personae.core.safety import ContentPolicy
from personae.core.skill_stage import with_note
from personae.core.tracing import Tracer
from personae.core.turn_report import TurnReporter
from personae.core.types import GenerationParams, InboundMessage, OpenedTurn
from personae.errors import CharacterNotFound, ConversationNotFound, InvalidInput


class GroupTurns:
    """``generation``: the server's generation parameters; ``max_replies``: character
    replies to one user message, at most."""

    def __init__(
        self,
        *,
        catalog: CharacterCatalog,
        store: ConversationStore,
        routes: ModelRoutes,
        lock: ConversationLock,
        content: ContentPolicy,
        tracer: Tracer,
        behaviour: BehaviourStage,
        prompts: PromptStage,
        replies: ReplyStage,
        reporter: TurnReporter,
        generation: GenerationParams,
        max_replies: int,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._routes = routes
        self._lock = lock
        self._content = content
        self._tracer = tracer
        self._behaviour = behaviour
        self._prompts = prompts
        self._replies = replies
        self._reporter = reporter
        self._generation = generation
        self._max_replies = max_replies

    async def turn(self, inbound: InboundMessage) -> AsyncGenerator[TurnEvent, None]:
        """The turn of a message (its text already checked) to the group its conversation
        is, yielding its events: one ack, then each speaker's reply (``speaker`` says whose)."""
        if inbound.conversation_id is None:
            raise InvalidInput("a message to a group names its conversation")
        group = await self._store.get_group(inbound.conversation_id)
        if group is None:
            raise ConversationNotFound(inbound.conversation_id)
        members = [
            Member(self._catalog.get(m.character_id), m.muted)
            for m in group.members
            if m.character_id in self._catalog  # a character removed since is silent
        ]
        if not members:
            raise CharacterNotFound(group.members[0].character_id)
        if inbound.speaker is not None and inbound.speaker not in {m.id for m in members}:
            raise InvalidInput(f"{inbound.speaker!r} is not a member of this group")
        verdict = self._content.screen(inbound.text)
        if verdict.hits:
            self._reporter.moderation("input", verdict.hits)
            inbound = replace(inbound, text=verdict.text)  # masked
        structlog.contextvars.bind_contextvars(
            user=inbound.user, conversation=group.conversation_id
        )
        # Stored as the PII policy says for the first member's backend, as a one-to-one turn
        # stores it for its character's.
        stored = self._content.for_turn(self._routes.for_character(members[0].character))
        async with self._lock.hold(f"group\x00{group.conversation_id}"):
            opened = await self._store.open_turn(
                external_user_id=inbound.user,
                character_id=group.members[0].character_id,
                text=stored.stored(inbound.text),
                conversation_id=group.conversation_id,
                idempotency_key=inbound.idempotency_key,
                speaker=inbound.user,
                group=True,
            )
            yield MessageAck(opened.conversation, opened.message, duplicate=opened.duplicate)
            if opened.duplicate:
                return
            # Seeded by the group and the turn: the same seed and messages replay alike.
            rng = random.Random(f"{group.seed}:{opened.user_turn}")
            speakers = next_speakers(members, inbound.text, rng=rng, forced=inbound.speaker)
            names = {m.id: m.character.char_name for m in members}
            for speaker in speakers[: self._max_replies]:
                async with aclosing(self._reply(inbound, opened, speaker, names)) as events:
                    async for event in events:
                        yield event

    async def _reply(
        self, inbound: InboundMessage, opened: OpenedTurn, speaker: str, names: Mapping[str, str]
    ) -> AsyncGenerator[TurnEvent, None]:
        character = self._catalog.get(speaker)
        model = self._routes.for_character(character)
        guard = self._content.for_turn(model)
        params = generation_params(character, inbound, self._generation)
        tally = TurnTally()
        span = self._tracer.start("turn", character=character.id, backend=model.name)
        try:
            behaviour = await self._behaviour.step(character, opened, inbound)
            text = nudge(character)  # whose reply comes next
            prompt = await self._prompts.assemble(character, model, opened, text, params, names)
            if behaviour is not None:
                prompt = with_note(prompt, behaviour.note, model.count_tokens)
                if behaviour.event is not None:
                    yield behaviour.event
            generation = self._replies.stream(
                character, model, opened, prompt, params, inbound, guard, behaviour, span, speaker
            )
            async with aclosing(generation) as events:
                async for event in events:
                    tally.saw(event)
                    yield event
        except BaseException as exc:
            tally.ended_by(exc)
            raise
        finally:
            span.set(outcome=tally.outcome.value)
            span.end()
            self._reporter.finished(inbound, character, model, tally)
