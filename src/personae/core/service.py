"""ChatService: one turn, from a user's message to a stored reply.

    lock (user, character) -> store the user message (durable) -> ack
      -> skills -> step the behaviour machine (core/behaviour/stage.py) -> state.changed
      -> assemble the prompt under the budget -> stream from the backend -> deltas
      -> store the reply with model, tokens and latency -> done

A turn that fails before the backend produced anything is discarded whole (the store is as it
was before the turn). A turn that fails or is cancelled midway keeps what arrived, marked
``incomplete`` or ``cancelled``, so nothing the user saw is lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace

import structlog

from personae.core.behaviour.stage import BehaviourStage, BehaviourTurn
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageAck, MessageDelta, MessageDone, TurnEvent
from personae.core.experiments.live import LiveExperiments
from personae.core.group import Member, group_history, next_speakers, nudge
from personae.core.memory.stage import NoMemory, PromptMemory
from personae.core.moderation import Hit
from personae.core.observe import TurnObserver, TurnOutcome, TurnTally
from personae.core.overrides import NO_OVERRIDES
from personae.core.ports import ChatModel, ConversationLock, ConversationStore
from personae.core.prompt import AssembledPrompt, PromptBudget, assemble_prompt, greeting_text
from personae.core.recent_counts import RecentCounts
from personae.core.route_choice import RouteChooser
from personae.core.routing import ModelRoutes
from personae.core.safety import ContentPolicy, TurnGuard
from personae.core.skill_stage import NOTHING, SkillStage, skill_reply, with_note
from personae.core.skills import SkillContext
from personae.core.tool_loop import ToolLoop
from personae.core.tracing import Span, Tracer
from personae.core.turn_recorder import NO_TRACE, TurnRecorder, TurnTrace
from personae.core.types import (
    ChatRequest,
    GenerationParams,
    InboundMessage,
    MessageStatus,
    NewMessage,
    OpenedTurn,
    Redo,
    Role,
    Usage,
)
from personae.errors import (
    BackendError,
    BackendProtocolError,
    CharacterNotFound,
    ContentBlocked,
    ConversationNotFound,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)

log = structlog.get_logger(__name__)

PAGE_MARGIN = 8  # messages read beyond what the last prompt kept: a turn adds two
KEPT_CONVERSATIONS = 10_000  # conversations whose last prompt size is remembered


@dataclass(frozen=True, slots=True)
class TurnSettings:
    max_message_chars: int = 8000
    history_messages: int = 200  # how many stored messages to consider for the window
    context_tokens: int = 2048  # used when the backend does not know its context window
    generation: GenerationParams = field(default_factory=GenerationParams)
    user_name: str = "User"
    log_content: bool = False  # log the message and reply texts (at debug level)
    group_max_replies: int = 3  # character replies to one user message in a group, at most
    max_tool_rounds: int = 3  # rounds of model tool calls in one reply (core/tool_loop.py)
    # Messages read first for a one-to-one prompt; the rest of the window only if they all fit.
    history_page: int = 64


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
        tracer: Tracer | None = None,
        memory: PromptMemory | None = None,
        experiments: LiveExperiments | None = None,
        recorder: TurnRecorder | None = None,
    ) -> None:
        self._catalog = catalog
        self._experiments = experiments or LiveExperiments()  # who gets which variant
        self._store = store
        self._routes = routes
        self._chooser = RouteChooser(routes, store, history_messages=settings.history_messages)
        self._lock = lock
        self._settings = settings
        self._observer = observer or TurnObserver()
        self._skills = skills or SkillStage({})
        self._content = content or ContentPolicy()  # moderation + PII (core/safety.py)
        self._tracer = tracer or Tracer()  # spans per turn and stage (off: a no-op)
        self._memory = memory or NoMemory()  # profile + recall note (core/memory/stage.py)
        self.recorder = recorder or TurnRecorder()  # a sample of turns, recorded (replay)
        self._behaviour = BehaviourStage(store, self._skills, user_name=settings.user_name)
        self._tools = ToolLoop(
            self._skills.skills,
            self._skills.runner,
            max_rounds=settings.max_tool_rounds,
            on_call=lambda skill, ok: self._observer.skill_called(skill, ok=ok),
        )
        self._finishing: set[asyncio.Future[object]] = set()
        self._kept = RecentCounts(KEPT_CONVERSATIONS)  # history each prompt kept, lately

    def validate(self, inbound: InboundMessage) -> Character:
        """Check a message before any work: raises ``CharacterNotFound`` / ``InvalidInput``."""
        character = self._catalog.get(inbound.character_id)
        if inbound.redo is not None and inbound.conversation_id is None:
            raise InvalidInput("a regenerate or an edit names its conversation")
        if inbound.redo is not Redo.REGENERATE:  # a regenerate has no text of its own
            self._check_text(inbound)
        if inbound.greeting and not 0 <= inbound.greeting < len(character.greetings):
            raise InvalidInput(
                f"{character.id!r} has {len(character.greetings)} greeting(s); "
                f"there is no greeting {inbound.greeting}"
            )
        return character

    @property
    def user_name(self) -> str:
        """How prompts and greetings name the user."""
        return self._settings.user_name

    def check(self, inbound: InboundMessage) -> None:
        """``validate`` for any message, a group's included (its members are checked when
        its turn reads the group)."""
        if inbound.character_id:
            self.validate(inbound)
        else:
            self._check_text(inbound)

    def _check_text(self, inbound: InboundMessage) -> None:
        if not inbound.text.strip():
            raise InvalidInput("the message is empty")
        if len(inbound.text) > self._settings.max_message_chars:
            raise PayloadTooLarge(
                f"the message has {len(inbound.text)} characters; the limit is "
                f"{self._settings.max_message_chars}",
                limit=self._settings.max_message_chars,
            )
        try:
            self._content.screen(inbound.text)  # raises ContentBlocked
        except ContentBlocked:
            self._observer.moderation_hit("input", "block", 1)
            raise

    async def turn(self, inbound: InboundMessage) -> AsyncGenerator[TurnEvent, None]:
        """Run one turn, yielding its events. Consume it with ``contextlib.aclosing``.

        The turn is reported to the observer once it ends, however it ends, and the caller's
        log context gets ``user``, ``character`` and (once known) ``conversation``.

        A message with no character goes to the group its conversation is (``_group_turn``)."""
        if not inbound.character_id:
            async with aclosing(self._group_turn(inbound)) as group_events:
                async for event in group_events:
                    yield event
            return
        character = self.validate(inbound)
        inbound = self._assigned(inbound)  # an experiment's variant: overrides and tag
        overrides = inbound.overrides or NO_OVERRIDES
        if overrides.character_version is not None:  # raises NotFound if not kept
            character = self._catalog.get(character.id, overrides.character_version)
        if overrides.route is not None:
            model = self._routes.for_chain(overrides.route)
        else:  # by the message's kind and the context it needs (core/route_choice.py)
            model = await self._chooser.choose(character, inbound)
        verdict = self._content.screen(inbound.text)
        if verdict.hits:
            log.info("moderation", stage="input", words=[h.word for h in verdict.hits])
            self._count_hits("input", verdict.hits)
            inbound = replace(inbound, text=verdict.text)  # masked
        guard = self._content.for_turn(model)
        structlog.contextvars.bind_contextvars(user=inbound.user, character=character.id)
        tally = TurnTally()
        trace = self.recorder.start(inbound, character.id)  # core/turn_recorder.py
        span = trace.clock(self._tracer.start("turn", character=character.id, backend=model.name))
        try:
            turn = self._turn(inbound, character, model, guard, span, trace)
            async with aclosing(turn) as events:
                async for event in events:
                    tally.saw(event)
                    trace.saw(event)
                    if isinstance(event, MessageAck):
                        structlog.contextvars.bind_contextvars(conversation=event.conversation.id)
                        span.set(conversation=event.conversation.id)
                    yield event
        except BaseException as exc:
            tally.ended_by(exc)
            if tally.outcome not in (TurnOutcome.OK, TurnOutcome.CANCELLED):
                span.fail(exc)
            raise
        finally:
            span.set(outcome=tally.outcome.value)
            span.end()
            self._report(inbound, character, model, tally)
            # A recorded turn ends once its record is stored: after its last event (a
            # caller that closes the turn at MessageDone waits here, not for its reply).
            await trace.finish()

    def _assigned(self, inbound: InboundMessage) -> InboundMessage:
        assigned = self._experiments.assign(inbound)
        if assigned.experiment is None or assigned.overrides is None:
            return assigned
        version = assigned.overrides.character_version
        try:
            if version is not None:
                self._catalog.get_version(inbound.character_id, version)
        except NotFound:
            # A version the catalog no longer keeps (a restart knows only the files): the
            # turn gets the current one, as a pinned conversation would, and says so.
            tag = assigned.experiment.experiment_id
            log.warning("experiment version not kept", experiment=tag, version=version)
            overrides = replace(assigned.overrides, character_version=None)
            return replace(assigned, overrides=overrides)
        return assigned

    def _count_hits(self, stage: str, hits: Sequence[Hit]) -> None:
        for action, count in Counter(h.action.value for h in hits).items():
            self._observer.moderation_hit(stage, action, count)

    def _report(
        self, inbound: InboundMessage, character: Character, model: ChatModel, tally: TurnTally
    ) -> None:
        if tally.duplicate:
            return
        tag = inbound.experiment
        try:
            tally.report(
                self._observer,
                character=character.id,
                backend=model.name,
                experiment=tag.experiment_id if tag else None,
                variant=tag.variant if tag else None,
                user=inbound.user,
                user_chars=len(inbound.text),
            )
        except Exception:  # a metrics bug must not end the turn
            log.exception("turn observer failed")
        if self._settings.log_content:
            log.debug("turn content", text=inbound.text, reply=tally.reply_text)

    async def _turn(
        self,
        inbound: InboundMessage,
        character: Character,
        model: ChatModel,
        guard: TurnGuard,
        span: Span,
        trace: TurnTrace = NO_TRACE,
    ) -> AsyncGenerator[TurnEvent, None]:
        params = self._params(character, inbound)
        overrides = inbound.overrides or NO_OVERRIDES
        user_name = self._settings.user_name
        greeting = greeting_text(character, user_name=user_name, index=inbound.greeting)
        async with self._lock.hold(f"{inbound.user}\x00{character.id}"):
            with span.child("open"):  # the user message, stored (or reopened: a redo)
                opened = await self._open(inbound, character, guard, greeting)
            yield MessageAck(opened.conversation, opened.message, duplicate=opened.duplicate)
            if opened.duplicate:
                return
            behaviour: BehaviourTurn | None = None
            try:
                # characters_reload: pin (an override's version wins: it is the experiment)
                if self._catalog.policy == "pin" and overrides.character_version is None:
                    character, params = await self._pinned(character, opened, inbound)
                with span.child("skills") as stage:  # a redo runs no skill, moves no state
                    outcome = (
                        await self._skills.step(character, SkillContext.of(inbound, opened))
                        if inbound.redo is None
                        else NOTHING
                    )
                    trace.skill(outcome)
                    if outcome.skill is not None:
                        stage.set(skill=outcome.skill)
                        ok = outcome.result is None or outcome.result.ok
                        self._observer.skill_called(outcome.skill, ok=ok)
                with span.child("behaviour"):
                    if inbound.redo is None:
                        behaviour = await self._behaviour.step(character, opened, inbound)
                if outcome.reply is None:
                    with span.child("prompt"):
                        text = (
                            inbound.text
                            if inbound.redo is not Redo.REGENERATE
                            else (
                                opened.message.content  # as stored: PII policy applied
                            )
                        )
                        prompt = await self._assemble(character, model, opened, text, params)
                    if overrides.memory_enabled is not False:
                        prompt = await self._memory.enrich(prompt, opened, model.count_tokens)
                        if prompt.knowledge:  # the document chunks cited, guide.pdf#3
                            span.set(knowledge=",".join(prompt.knowledge))
                    prompt = with_note(prompt, overrides.instructions, model.count_tokens)
                    prompt = with_note(prompt, outcome.note, model.count_tokens)
                    if behaviour is not None:
                        prompt = with_note(prompt, behaviour.note, model.count_tokens)
            except BaseException:
                if not inbound.durable_ack:
                    await self._discard(opened, behaviour)
                raise
            if behaviour is not None and behaviour.event is not None:
                yield behaviour.event
            if outcome.reply is not None:  # a slash command: the skill answers, not the model
                version = self._catalog.version_of(character)
                generation = skill_reply(
                    self._store, opened, outcome, version=version, count_tokens=model.count_tokens
                )
            else:
                generation = self._generate(
                    character,
                    model,
                    opened,
                    prompt,
                    params,
                    inbound,
                    guard,
                    behaviour,
                    span,
                    trace=trace,
                )
            async with aclosing(generation) as events:
                async for event in events:
                    yield event

    async def _open(
        self, inbound: InboundMessage, character: Character, guard: TurnGuard, greeting: str | None
    ) -> OpenedTurn:
        if inbound.redo is None:
            return await self._store.open_turn(
                external_user_id=inbound.user,
                character_id=character.id,
                text=guard.stored(inbound.text),
                conversation_id=inbound.conversation_id,
                new_conversation=inbound.new_conversation,
                idempotency_key=inbound.idempotency_key,
                greeting=greeting,
            )
        assert inbound.conversation_id is not None  # validate() says so
        return await self._store.reopen_turn(
            inbound.conversation_id,
            external_user_id=inbound.user,
            character_id=character.id,
            text=guard.stored(inbound.text) if inbound.redo is Redo.EDIT else None,
            expected=inbound.redo_of,
            idempotency_key=inbound.idempotency_key,
        )

    async def _group_turn(self, inbound: InboundMessage) -> AsyncGenerator[TurnEvent, None]:
        """One user message to a group: stored once, then answered by the characters
        ``core/group.py`` picks, one after another, each with its own persona, backend and
        behaviour, each reply its own message (``speaker`` says whose)."""
        self._check_text(inbound)
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
            self._count_hits("input", verdict.hits)
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
            for speaker in speakers[: self._settings.group_max_replies]:
                async with aclosing(self._group_reply(inbound, opened, speaker, names)) as events:
                    async for event in events:
                        yield event

    async def _group_reply(
        self, inbound: InboundMessage, opened: OpenedTurn, speaker: str, names: Mapping[str, str]
    ) -> AsyncGenerator[TurnEvent, None]:
        character = self._catalog.get(speaker)
        model = self._routes.for_character(character)
        guard = self._content.for_turn(model)
        params = self._params(character, inbound)
        tally = TurnTally()
        span = self._tracer.start("turn", character=character.id, backend=model.name)
        try:
            behaviour = await self._behaviour.step(character, opened, inbound)
            prompt = await self._assemble(character, model, opened, nudge(character), params, names)
            if behaviour is not None:
                prompt = with_note(prompt, behaviour.note, model.count_tokens)
                if behaviour.event is not None:
                    yield behaviour.event
            generation = self._generate(
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
            self._report(inbound, character, model, tally)

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
        names: Mapping[str, str] | None = None,
    ) -> AssembledPrompt:
        """The prompt for ``character``'s reply to ``text``. With ``names`` (a group: who is
        who), the whole shared history as this character sees it, and ``text`` the nudge.

        A one-to-one prompt reads the newest page of the window first: the budget is nearly
        always spent long before the window's end, and every message read is a row turned
        into an object. Only when the whole page fits are older messages read too; the
        prompt is then the one the whole window gives (lore scans only the newest
        ``scan_depth`` messages, the turn number comes from the store)."""
        window = self._settings.history_messages + 1
        page = window if names is not None else self._first_page(character, opened, window)
        whole, prompt = await self._assemble_from(
            character, model, opened, text, params, names, page
        )
        if not whole:
            whole, prompt = await self._assemble_from(
                character, model, opened, text, params, names, window
            )
        if names is None:
            self._kept.remember(opened.conversation.id, prompt.history_included)
        return prompt

    def _first_page(self, character: Character, opened: OpenedTurn, window: int) -> int:
        """As many messages as the conversation's last prompt kept and a turn's worth more
        (``history_page`` for a conversation not seen lately), and at least what its
        lorebooks scan."""
        if opened.user_turn <= 0:  # the lorebook would count turns from the history
            return window
        kept = self._kept.get(opened.conversation.id)
        page = self._settings.history_page if kept is None else kept + PAGE_MARGIN
        return min(window, max(page, _scanned(character) + 2))

    async def _assemble_from(
        self,
        character: Character,
        model: ChatModel,
        opened: OpenedTurn,
        text: str,
        params: GenerationParams,
        names: Mapping[str, str] | None,
        limit: int,
    ) -> tuple[bool, AssembledPrompt]:
        """The prompt from the newest ``limit`` messages, and whether it is the prompt the
        whole window gives: the conversation has no more, or the budget was spent before
        the oldest message read and every message the lorebooks scan was read."""
        recent = await self._store.recent_messages(opened.conversation.id, limit=limit)
        if names is None:  # what came before the message answered (a redo's: not its replies)
            history = [m for m in recent if m.seq < opened.message.seq]
        else:
            history = group_history(recent, character.id, names)
        prompt = assemble_prompt(
            character,
            history=history,
            user_text=text,
            user_name=self._settings.user_name,
            budget=PromptBudget(
                context_tokens=model.context_window or self._settings.context_tokens,
                reply_tokens=params.max_tokens + self._memory.reserved_tokens,  # + its note
            ),
            count_tokens=model.count_tokens,
            pick_seed=opened.conversation.id,  # {{pick:...}} stays the same all conversation
            turn=opened.user_turn or None,  # the lorebook's @@activate_only_after / _every
        )
        whole = (
            len(recent) < limit
            or limit > self._settings.history_messages
            or (prompt.history_dropped > 0 and len(history) >= _scanned(character))
        )
        return whole, prompt

    def _params(self, character: Character, inbound: InboundMessage) -> GenerationParams:
        # The caller's wishes win over a variant's, over the character's, over the server's.
        variant = (inbound.overrides or NO_OVERRIDES).generation
        return inbound.sampling.over(
            variant.over(character.generation.as_overrides().over(self._settings.generation))
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
        behaviour: BehaviourTurn | None,
        span: Span,
        speaker: str | None = None,
        trace: TurnTrace = NO_TRACE,
    ) -> AsyncGenerator[TurnEvent, None]:
        conversation_id = opened.conversation.id
        request = ChatRequest(
            messages=guard.outbound(prompt.messages),  # PII as tokens for remote backends
            params=params,
            assistant_name=character.name,
            user_name=self._settings.user_name,
            tools=self._tools.offer(character, model),
        )
        context = SkillContext(inbound.user, character.id, conversation_id, inbound.text)
        trace.prompted(request, prompt)
        replies = self._tools.stream(  # the model's tool calls answered by skills, if any
            model,
            request,
            context,
            outbound=guard.outbound,
            restore=guard.vault.restore if guard.vault is not None else str,
        )
        replies = trace.listen(replies)  # the routes taken, heard (core/route_log.py)
        started = time.perf_counter()
        first_token_at: float | None = None
        parts: list[str] = []
        usage: Usage | None = None
        finish_reason = "stop"
        call = span.child("generate", backend=model.name)  # current while the backend runs
        try:
            async with aclosing(call.around(replies)) as chunks:
                async for chunk in chunks:
                    if chunk.text:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        if shown := guard.feed(chunk.text):  # PII restored, words masked
                            parts.append(shown)
                            yield MessageDelta(conversation_id, shown, speaker)
                    if chunk.usage is not None:
                        usage = chunk.usage
                    if chunk.finish_reason is not None:
                        finish_reason = chunk.finish_reason
            if shown := guard.flush():
                parts.append(shown)
                yield MessageDelta(conversation_id, shown, speaker)
            if guard.output_hits:
                log.info("moderation", stage="output", words=[h.word for h in guard.output_hits])
                self._count_hits("output", guard.output_hits)
            text = "".join(parts).strip()
            if not text:
                raise BackendProtocolError("the model returned an empty reply", backend=model.name)
        except BackendError as exc:
            call.fail(exc)
            parts.append(guard.flush())
            status = MessageStatus.INCOMPLETE
            await self._settle(model, opened, inbound, parts, started, status, behaviour, speaker)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            parts.append(guard.flush())
            status = MessageStatus.CANCELLED
            await self._settle(model, opened, inbound, parts, started, status, behaviour, speaker)
            raise
        finally:
            call.end()

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
                speaker=speaker,
                swipe_of=opened.swipe_of,  # a regenerate: shown instead of the earlier replies
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
        behaviour: BehaviourTurn | None,
        speaker: str | None = None,
    ) -> None:
        """End a turn that did not complete: keep what the user saw, or leave no trace."""
        text = "".join(parts).strip()
        if not text:
            if not inbound.durable_ack:  # an acknowledged message stays, reply or not
                await self._shielded(self._discard(opened, behaviour))
            return
        partial = NewMessage(
            role=Role.ASSISTANT,
            content=text,
            status=status,
            model=model.name,
            completion_tokens=model.count_tokens(text),
            latency_ms=(time.perf_counter() - started) * 1000,
            speaker=speaker,
            swipe_of=opened.swipe_of,
        )
        await self._shielded(self._store.append_message(opened.conversation.id, partial))

    async def _discard(self, opened: OpenedTurn, behaviour: BehaviourTurn | None) -> None:
        """Leave no trace of the turn: its behaviour step too (a new conversation's state
        goes with the conversation). A redo's message was there before: it stays."""
        if opened.reopened:
            return
        if behaviour is not None and not opened.created_conversation:
            await self._behaviour.undo(behaviour)
        await self._store.discard_turn(opened)

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


def _scanned(character: Character) -> int:
    """How many of the newest messages the character's lorebooks scan, at most."""
    return max((book.scan_depth for book in character.books), default=0)
