"""ChatService: one turn, from a user's message to a stored reply.

    lock (user, character) -> store the user message (durable) -> ack
      -> assemble the prompt under the budget -> stream from the backend -> deltas
      -> store the reply with model, tokens and latency -> done

A turn that fails before the backend produced anything is discarded whole (the store is as it
was before the turn). A turn that fails or is cancelled midway keeps what arrived, marked
``incomplete`` or ``cancelled``, so nothing the user saw is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing
from dataclasses import dataclass, field, replace

import structlog

from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageAck, MessageDelta, MessageDone, TurnEvent
from personae.core.observe import TurnObserver, TurnTally
from personae.core.ports import ChatModel, ConversationLock, ConversationStore
from personae.core.prompt import AssembledPrompt, PromptBudget, assemble_prompt, greeting_text
from personae.core.routing import ModelRoutes
from personae.core.safety import ContentPolicy, TurnGuard
from personae.core.skill_stage import SkillStage, skill_reply, with_note
from personae.core.skills import SkillContext
from personae.core.types import (
    ChatRequest,
    GenerationParams,
    InboundMessage,
    MessageStatus,
    NewMessage,
    OpenedTurn,
    Role,
    Usage,
)
from personae.errors import BackendError, BackendProtocolError, InvalidInput, PayloadTooLarge

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TurnSettings:
    max_message_chars: int = 8000
    history_messages: int = 200  # how many stored messages to consider for the window
    context_tokens: int = 2048  # used when the backend does not know its context window
    generation: GenerationParams = field(default_factory=GenerationParams)
    user_name: str = "User"
    log_content: bool = False  # log the message and reply texts (at debug level)


class ChatService:
    def __init__(
        self,
        *,
        catalog: CharacterCatalog,
        store: ConversationStore,
        routes: ModelRoutes,
        lock: ConversationLock,
        settings: TurnSettings,
        observer: TurnObserver | None = None,
        skills: SkillStage | None = None,
        content: ContentPolicy | None = None,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._routes = routes
        self._lock = lock
        self._settings = settings
        self._observer = observer or TurnObserver()
        self._skills = skills or SkillStage({})
        self._content = content or ContentPolicy()  # moderation + PII (core/safety.py)
        self._finishing: set[asyncio.Future[object]] = set()

    def validate(self, inbound: InboundMessage) -> Character:
        """Check a message before any work: raises ``CharacterNotFound`` / ``InvalidInput``."""
        character = self._catalog.get(inbound.character_id)
        if not inbound.text.strip():
            raise InvalidInput("the message is empty")
        if len(inbound.text) > self._settings.max_message_chars:
            raise PayloadTooLarge(
                f"the message has {len(inbound.text)} characters; the limit is "
                f"{self._settings.max_message_chars}",
                limit=self._settings.max_message_chars,
            )
        self._content.screen(inbound.text)  # raises ContentBlocked
        return character

    async def turn(self, inbound: InboundMessage) -> AsyncGenerator[TurnEvent, None]:
        """Run one turn, yielding its events. Consume it with ``contextlib.aclosing``.

        The turn is reported to the observer once it ends, however it ends, and the caller's
        log context gets ``user``, ``character`` and (once known) ``conversation``."""
        character = self.validate(inbound)
        model = self._routes.for_character(character)
        verdict = self._content.screen(inbound.text)
        if verdict.hits:
            log.info("moderation", stage="input", words=[h.word for h in verdict.hits])
            inbound = replace(inbound, text=verdict.text)  # masked
        guard = self._content.for_turn(model)
        structlog.contextvars.bind_contextvars(user=inbound.user, character=character.id)
        tally = TurnTally()
        try:
            async with aclosing(self._turn(inbound, character, model, guard)) as events:
                async for event in events:
                    tally.saw(event)
                    if isinstance(event, MessageAck):
                        structlog.contextvars.bind_contextvars(conversation=event.conversation.id)
                    yield event
        except BaseException as exc:
            tally.ended_by(exc)
            raise
        finally:
            self._report(inbound, character, model, tally)

    def _report(
        self, inbound: InboundMessage, character: Character, model: ChatModel, tally: TurnTally
    ) -> None:
        if tally.duplicate:
            return
        try:
            tally.report(self._observer, character=character.id, backend=model.name)
        except Exception:  # a metrics bug must not end the turn
            log.exception("turn observer failed")
        if self._settings.log_content:
            log.debug("turn content", text=inbound.text, reply=tally.reply_text)

    async def _turn(
        self, inbound: InboundMessage, character: Character, model: ChatModel, guard: TurnGuard
    ) -> AsyncGenerator[TurnEvent, None]:
        params = self._params(character, inbound)
        user_name = self._settings.user_name
        greeting = greeting_text(character, user_name=user_name)
        async with self._lock.hold(f"{inbound.user}\x00{character.id}"):
            opened = await self._store.open_turn(
                external_user_id=inbound.user,
                character_id=character.id,
                text=guard.stored(inbound.text),
                conversation_id=inbound.conversation_id,
                new_conversation=inbound.new_conversation,
                idempotency_key=inbound.idempotency_key,
                greeting=greeting,
            )
            yield MessageAck(opened.conversation, opened.message, duplicate=opened.duplicate)
            if opened.duplicate:
                return
            try:
                if self._catalog.policy == "pin":  # characters_reload: pin
                    character, params = await self._pinned(character, opened, inbound)
                outcome = await self._skills.step(character, SkillContext.of(inbound, opened))
                if outcome.reply is None:
                    prompt = await self._assemble(character, model, opened, inbound.text, params)
                    prompt = with_note(prompt, outcome.note, model.count_tokens)
            except BaseException:
                if not inbound.durable_ack:
                    await self._store.discard_turn(opened)
                raise
            if outcome.reply is not None:  # a slash command: the skill answers, not the model
                version = self._catalog.version_of(character)
                generation = skill_reply(
                    self._store, opened, outcome, version=version, count_tokens=model.count_tokens
                )
            else:
                generation = self._generate(
                    character, model, opened, prompt, params, inbound, guard
                )
            async with aclosing(generation) as events:
                async for event in events:
                    yield event

    async def _pinned(
        self, character: Character, opened: OpenedTurn, inbound: InboundMessage
    ) -> tuple[Character, GenerationParams]:
        """The version that wrote the conversation's latest reply, while the catalog keeps
        it, else the current one (the backend stays the one routed for the current one)."""
        recent = await self._store.recent_messages(
            opened.conversation.id, limit=self._settings.history_messages + 1
        )
        used = next((m.character_version for m in reversed(recent) if m.character_version), None)
        if character.id in self._catalog:  # else it was removed just now: finish with this one
            character = self._catalog.for_conversation(character.id, used)
        return character, self._params(character, inbound)

    async def _assemble(
        self,
        character: Character,
        model: ChatModel,
        opened: OpenedTurn,
        text: str,
        params: GenerationParams,
    ) -> AssembledPrompt:
        recent = await self._store.recent_messages(
            opened.conversation.id, limit=self._settings.history_messages + 1
        )
        history = [m for m in recent if m.id != opened.message.id]
        return assemble_prompt(
            character,
            history=history,
            user_text=text,
            user_name=self._settings.user_name,
            budget=PromptBudget(
                context_tokens=model.context_window or self._settings.context_tokens,
                reply_tokens=params.max_tokens,
            ),
            count_tokens=model.count_tokens,
            pick_seed=opened.conversation.id,  # {{pick:...}} stays the same all conversation
        )

    def _params(self, character: Character, inbound: InboundMessage) -> GenerationParams:
        # The caller's wishes win over the character's, which win over the server's.
        return inbound.sampling.over(
            character.generation.as_overrides().over(self._settings.generation)
        )

    async def _generate(
        self,
        character: Character,
        model: ChatModel,
        opened: OpenedTurn,
        prompt: AssembledPrompt,
        params: GenerationParams,
        inbound: InboundMessage,
        guard: TurnGuard,
    ) -> AsyncGenerator[TurnEvent, None]:
        conversation_id = opened.conversation.id
        request = ChatRequest(
            messages=guard.outbound(prompt.messages),  # PII as tokens for remote backends
            params=params,
            assistant_name=character.name,
            user_name=self._settings.user_name,
        )
        started = time.perf_counter()
        first_token_at: float | None = None
        parts: list[str] = []
        usage: Usage | None = None
        finish_reason = "stop"
        try:
            async with aclosing(model.stream(request)) as chunks:
                async for chunk in chunks:
                    if chunk.text:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        if shown := guard.feed(chunk.text):  # PII restored, words masked
                            parts.append(shown)
                            yield MessageDelta(conversation_id, shown)
                    if chunk.usage is not None:
                        usage = chunk.usage
                    if chunk.finish_reason is not None:
                        finish_reason = chunk.finish_reason
            if shown := guard.flush():
                parts.append(shown)
                yield MessageDelta(conversation_id, shown)
            if guard.output_hits:
                log.info("moderation", stage="output", words=[h.word for h in guard.output_hits])
            text = "".join(parts).strip()
            if not text:
                raise BackendProtocolError("the model returned an empty reply", backend=model.name)
        except BackendError:
            parts.append(guard.flush())
            await self._settle(model, opened, inbound, parts, started, MessageStatus.INCOMPLETE)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            parts.append(guard.flush())
            await self._settle(model, opened, inbound, parts, started, MessageStatus.CANCELLED)
            raise

        latency_ms = (time.perf_counter() - started) * 1000
        usage = usage or Usage(prompt.tokens, model.count_tokens(text))
        reply = await self._store.append_message(
            conversation_id,
            NewMessage(
                role=Role.ASSISTANT,
                content=guard.stored(text),
                model=model.name,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                latency_ms=latency_ms,
                character_version=self._catalog.version_of(character),
            ),
        )
        yield MessageDone(
            conversation_id=conversation_id,
            message=reply,
            usage=usage,
            latency_ms=latency_ms,
            time_to_first_token_ms=(first_token_at - started) * 1000 if first_token_at else None,
            finish_reason=finish_reason,
        )

    async def _settle(
        self,
        model: ChatModel,
        opened: OpenedTurn,
        inbound: InboundMessage,
        parts: list[str],
        started: float,
        status: MessageStatus,
    ) -> None:
        """End a turn that did not complete: keep what the user saw, or leave no trace."""
        text = "".join(parts).strip()
        if not text:
            if not inbound.durable_ack:  # an acknowledged message stays, reply or not
                await self._shielded(self._store.discard_turn(opened))
            return
        partial = NewMessage(
            role=Role.ASSISTANT,
            content=text,
            status=status,
            model=model.name,
            completion_tokens=model.count_tokens(text),
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        await self._shielded(self._store.append_message(opened.conversation.id, partial))

    async def _shielded(self, work: Awaitable[object]) -> None:
        # A cancelled caller must not lose the write: it runs as its own task and finishes
        # even if the caller is cancelled again while waiting for it.
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for writes that outlived their cancelled turns (call before closing the store)."""
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
