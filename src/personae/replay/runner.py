"""Run a replay: a conversation's user messages, in order, through a ``ChatService`` built
like the live one but on a *scratch* store, so each replayed turn sees the replayed history
and the live conversation is never touched (nothing is written to the live store: the
scratch store is a temporary SQLite file the caller's factory makes and deletes).

The replayed turns go through ``ChatService.turn`` like any turn (no second turn loop), with
the plan's overrides; every one is recorded (rate 1.0, in memory) so its prompt can be
compared with the original's record, when the original conversation was recorded. The
memory each original turn had comes from its record (``core/replay.py: RecordedMemory``);
skills are left out, since a skill may act on the world (a reminder, a tool call).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, aclosing
from dataclasses import dataclass

import structlog

from personae.core.events import MessageAck, MessageDone
from personae.core.experiments.spec import Experiment
from personae.core.memory.stage import PromptMemory
from personae.core.ports import ConversationStore
from personae.core.replay import (
    ComparedTurn,
    RecordedMemory,
    ReplayPlan,
    ReplayReport,
    Side,
    prompt_diff,
    with_record,
)
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService
from personae.core.turn_record import MemoryTurnRecords, TurnRecord, TurnRecords
from personae.core.turn_recorder import SampledRecorder, TurnRecorder
from personae.core.types import InboundMessage, Message, Role
from personae.errors import (
    ConfigurationError,
    ConversationNotFound,
    InvalidInput,
    PersonaeError,
)

log = structlog.get_logger(__name__)

#: Builds the replay's ChatService on the scratch store, with its recorder and memory.
ServiceFactory = Callable[[ConversationStore, TurnRecorder, PromptMemory], ChatService]
#: A fresh, empty store that is gone once the context exits.
ScratchStore = Callable[[], AbstractAsyncContextManager[ConversationStore]]

REPLAY_USER = "replay"
PAGE = 200


@dataclass(frozen=True, slots=True)
class _Original:
    user: Message
    reply: Message | None  # None: the turn left no reply (failed, or a group's)


class ReplayRunner:
    def __init__(
        self,
        *,
        live: ConversationStore,
        records: TurnRecords | None,
        routes: ModelRoutes,
        service: ServiceFactory,
        scratch: ScratchStore,
        experiments: Callable[[str], Experiment | None] = lambda _id: None,
        max_turns: int = 200,
    ) -> None:
        self._live = live
        self._records = records
        self._routes = routes
        self._service = service
        self._scratch = scratch
        self.experiments = experiments
        self._max_turns = max_turns

    async def run(self, plan: ReplayPlan) -> ReplayReport:
        """Replay ``plan.conversation_id``; raises ``ConversationNotFound`` /
        ``InvalidInput`` before anything runs when it cannot be replayed."""
        conversation = await self._live.get_conversation(plan.conversation_id)
        if conversation is None:
            raise ConversationNotFound(plan.conversation_id)
        if await self._live.get_group(conversation.id) is not None:
            raise InvalidInput("a group conversation cannot be replayed (one-to-one only)")
        if plan.overrides.route is not None:
            try:
                self._routes.for_chain(plan.overrides.route)
            except ConfigurationError as exc:
                raise InvalidInput(f"--route: {exc}") from None
        originals = _pairs(await self._messages(conversation.id))
        if not originals:
            raise InvalidInput("the conversation has no user message to replay")
        if len(originals) > self._max_turns:
            raise InvalidInput(
                f"the conversation has {len(originals)} user messages; a replay runs at most "
                f"{self._max_turns} (replay.max_turns)",
                limit=self._max_turns,
            )
        recorded = await self._recorded(conversation.id)
        notes = [
            recorded[o.reply.id].memory_note if o.reply and o.reply.id in recorded else None
            for o in originals
        ]
        replayed = MemoryTurnRecords()
        recorder = SampledRecorder(replayed, rate=1.0)
        turns: list[ComparedTurn] = []
        async with self._scratch() as scratch:
            service = self._service(scratch, recorder, RecordedMemory(notes))
            conversation_id: str | None = None
            for index, original in enumerate(originals, start=1):
                side, reply_id, conversation_id = await self._turn(
                    service, plan, conversation.character_id, original.user, conversation_id
                )
                await recorder.drain()
                before = recorded.get(original.reply.id) if original.reply else None
                after = await replayed.get(reply_id) if reply_id else None
                turns.append(
                    ComparedTurn(
                        index=index,
                        user_text=original.user.content,
                        original=with_record(_side(original.reply), before),
                        replayed=with_record(side, after),
                        prompt_diff=prompt_diff(before, after),
                    )
                )
            await service.drain()
        return ReplayReport(plan, conversation.character_id, tuple(turns))

    async def _turn(
        self,
        service: ChatService,
        plan: ReplayPlan,
        character_id: str,
        user: Message,
        conversation_id: str | None,
    ) -> tuple[Side, str | None, str | None]:
        inbound = InboundMessage(
            user=REPLAY_USER,
            character_id=character_id,
            text=user.content,
            conversation_id=conversation_id,
            new_conversation=conversation_id is None,
            channel="replay",
            durable_ack=True,  # a failed turn keeps its message: later turns still see it
            overrides=plan.overrides,
            experiment=plan.experiment,
        )
        done: MessageDone | None = None
        try:
            async with aclosing(service.turn(inbound)) as events:
                async for event in events:
                    if isinstance(event, MessageAck):  # the scratch conversation, once made
                        conversation_id = event.conversation.id
                    elif isinstance(event, MessageDone):
                        done = event
        except PersonaeError as exc:  # the turn failed: say so in its row and go on
            log.info("replayed turn failed", error=str(exc))
            return Side("", error=f"{exc.code}: {exc}"), None, conversation_id
        if done is None:
            return Side("", error="no reply"), None, conversation_id
        message = done.message
        side = Side(
            message.content,
            model=message.model,
            latency_ms=done.latency_ms,
            prompt_tokens=done.usage.prompt_tokens,
            completion_tokens=done.usage.completion_tokens,
        )
        return side, message.id, conversation_id

    async def _messages(self, conversation_id: str) -> list[Message]:
        messages: list[Message] = []
        after = 0
        while True:
            page = await self._live.list_messages(conversation_id, after_seq=after, limit=PAGE)
            messages.extend(page)
            if len(page) < PAGE:
                return messages
            after = page[-1].seq

    async def _recorded(self, conversation_id: str) -> dict[str, TurnRecord]:
        if self._records is None:
            return {}
        return {r.turn_id: r for r in await self._records.for_conversation(conversation_id)}


def _pairs(messages: Sequence[Message]) -> list[_Original]:
    """Each user message with the reply that followed it (the first, before the next user
    message); a greeting before the first user message is not a turn."""
    pairs: list[_Original] = []
    for message in messages:
        if message.role is Role.USER:
            pairs.append(_Original(message, None))
        elif message.role is Role.ASSISTANT and pairs and pairs[-1].reply is None:
            pairs[-1] = _Original(pairs[-1].user, message)
    return pairs


def _side(reply: Message | None) -> Side:
    if reply is None:
        return Side("", error="no reply was stored")
    return Side(
        reply.content,
        model=reply.model,
        latency_ms=reply.latency_ms,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
    )
