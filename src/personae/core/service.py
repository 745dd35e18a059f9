"""ChatService: one turn, from a user's message to a stored reply.

    lock (user, character) -> store the user message (durable) -> ack
      -> skills (core/skill_stage.py) -> step the behaviour machine (core/behaviour/stage.py)
         -> state.changed
      -> assemble the prompt under the budget (core/prompt_stage.py)
      -> stream from the backend -> deltas -> store the reply with model, tokens and latency
         -> done (core/reply_stage.py)

A turn that fails before the backend produced anything is discarded whole (the store is as it
was before the turn). A turn that fails or is cancelled midway keeps what arrived, marked
``incomplete`` or ``cancelled``, so nothing the user saw is lost. A message with no character
goes to the group its conversation is (core/group_turn.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field, replace

import structlog

from personae.core.behaviour.stage import BehaviourStage, BehaviourTurn
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageAck, TurnEvent
from personae.core.experiments.live import LiveExperiments
from personae.core.group_turn import GroupTurns
from personae.core.memory.stage import NoMemory, PromptMemory
from personae.core.observe import TurnObserver, TurnOutcome, TurnTally
from personae.core.overrides import NO_OVERRIDES, generation_params
from personae.core.ports import ChatModel, ConversationLock, ConversationStore
from personae.core.prompt import greeting_text
from personae.core.prompt_stage import PromptStage
from personae.core.reply_stage import ReplyStage
from personae.core.route_choice import RouteChooser
from personae.core.routing import ModelRoutes
from personae.core.safety import ContentPolicy, TurnGuard
from personae.core.skill_stage import NOTHING, SkillStage, skill_reply, with_note
from personae.core.skills import SkillContext
from personae.core.tool_loop import ToolLoop
from personae.core.tracing import Span, Tracer
from personae.core.turn_recorder import NO_TRACE, TurnRecorder, TurnTrace
from personae.core.turn_report import TurnReporter
from personae.core.types import GenerationParams, InboundMessage, OpenedTurn, Redo
from personae.errors import ContentBlocked, InvalidInput, NotFound, PayloadTooLarge

log = structlog.get_logger(__name__)


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
        self._reporter = TurnReporter(self._observer, log_content=settings.log_content)
        self._prompts = PromptStage(
            store,
            catalog,
            self._memory,
            history_messages=settings.history_messages,
            history_page=settings.history_page,
            context_tokens=settings.context_tokens,
            user_name=settings.user_name,
        )
        tools = ToolLoop(
            self._skills.skills,
            self._skills.runner,
            max_rounds=settings.max_tool_rounds,
            on_call=lambda skill, ok: self._observer.skill_called(skill, ok=ok),
        )
        self._replies = ReplyStage(
            store, catalog, self._behaviour, tools, self._reporter, user_name=settings.user_name
        )
        self._groups = GroupTurns(
            catalog=catalog,
            store=store,
            routes=routes,
            lock=lock,
            content=self._content,
            tracer=self._tracer,
            behaviour=self._behaviour,
            prompts=self._prompts,
            replies=self._replies,
            reporter=self._reporter,
            generation=settings.generation,
            max_replies=settings.group_max_replies,
        )

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

        A message with no character goes to the group its conversation is (``GroupTurns``)."""
        if not inbound.character_id:
            self._check_text(inbound)  # the group turn checks who is in the group
            async with aclosing(self._groups.turn(inbound)) as group_events:
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
            self._reporter.moderation("input", verdict.hits)
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
            self._reporter.finished(inbound, character, model, tally)
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

    async def _turn(
        self,
        inbound: InboundMessage,
        character: Character,
        model: ChatModel,
        guard: TurnGuard,
        span: Span,
        trace: TurnTrace = NO_TRACE,
    ) -> AsyncGenerator[TurnEvent, None]:
        params = generation_params(character, inbound, self._settings.generation)
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
                    character = await self._prompts.pinned(character, opened)
                    params = generation_params(character, inbound, self._settings.generation)
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
                        prompt = await self._prompts.assemble(
                            character, model, opened, text, params
                        )
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
                    await self._replies.discard(opened, behaviour)
                raise
            if behaviour is not None and behaviour.event is not None:
                yield behaviour.event
            if outcome.reply is not None:  # a slash command: the skill answers, not the model
                version = self._catalog.version_of(character)
                generation = skill_reply(
                    self._store, opened, outcome, version=version, count_tokens=model.count_tokens
                )
            else:
                generation = self._replies.stream(
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

    async def drain(self) -> None:
        """Wait for writes that outlived their cancelled turns (call before closing the store)."""
        await self._replies.drain()
