"""Recording turns (``core/turn_record.py``) as they run, for a sampled share of them.

``ChatService`` asks the recorder for a ``TurnTrace`` when a turn starts and tells the trace
what it did: the stage spans go through ``trace.clock`` (a stage's duration is measured where
the tracer already marks it), the skill outcome, the request sent, the stream (routes are
heard through ``core/route_log.py``) and the turn's events; at ``MessageDone`` the record is
whole and goes to a queue written by one background task, in batches (with the other writes
of the group commit). The reply is never delayed: the turn waits for its record only after
its last event (``finish``), so that a turn that has ended is wholly stored, and a failing
store never fails a turn (the record is logged as lost).

Sampling is by conversation, not by turn: a hash of the conversation id below ``rate``. A
sampled conversation is recorded whole, which is what a replay's prompt comparison needs, and
the choice costs nothing to make again at every turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import structlog

from personae.core.events import MessageAck, MessageDone, TurnEvent
from personae.core.memory.stage import PROFILE_HEADING, RECALL_HEADING
from personae.core.memory.summary import SUMMARY_HEADING
from personae.core.prompt import AssembledPrompt
from personae.core.route_log import RouteTaken, listening
from personae.core.skill_stage import SkillOutcome
from personae.core.tracing import Attribute, Span
from personae.core.turn_record import SkillTaken, StageTime, TurnRecord, TurnRecords
from personae.core.types import ChatMessage, ChatRequest, GenerationParams, InboundMessage, Role

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Records waiting to be written, at most: past it, new ones are dropped (and counted), so a
#: store that stalls costs bounded memory.
MAX_PENDING = 1000

#: The headings that start the notes memory adds to a prompt (core/memory/).
MEMORY_HEADINGS = (PROFILE_HEADING, RECALL_HEADING, SUMMARY_HEADING)


def sampled(conversation_id: str, rate: float) -> bool:
    """Whether the conversation is among the recorded share ``rate`` (0..1): the same answer
    every time for the same conversation."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    digest = hashlib.blake2b(conversation_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < rate


class TurnTrace:
    """A turn that is not recorded: every call does nothing and hands its input back."""

    def clock(self, span: Span) -> Span:
        return span

    def skill(self, outcome: SkillOutcome) -> None:
        """The skill stage's outcome."""

    def prompted(self, request: ChatRequest, prompt: AssembledPrompt) -> None:
        """The request about to go to the backend and the prompt it was made from."""

    def listen(self, stream: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        return stream

    def saw(self, event: TurnEvent) -> None:
        """An event of the turn, as the caller gets it."""

    async def finish(self) -> None:
        """Wait until the turn's record is written: the turn's caller has every event by
        now, so this delays only the end of the turn, never its reply."""


NO_TRACE = TurnTrace()


class TurnRecorder:
    """Records nothing (the default): see ``SampledRecorder``."""

    def start(self, inbound: InboundMessage, character_id: str) -> TurnTrace:
        return NO_TRACE

    async def drain(self) -> None:
        """Wait until every finished record is written (call before closing the store)."""


class SampledRecorder(TurnRecorder):
    def __init__(
        self,
        records: TurnRecords,
        *,
        rate: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_pending: int = MAX_PENDING,
    ) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"the record rate must be between 0 and 1, not {rate}")
        self.records = records
        self.rate = rate
        self.dropped = 0  # records lost to a full queue or a failed write
        self._clock = clock
        self._max_pending = max_pending
        self._pending: list[tuple[TurnRecord, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    def start(self, inbound: InboundMessage, character_id: str) -> TurnTrace:
        known = inbound.conversation_id
        if self.rate == 0 or (known is not None and not sampled(known, self.rate)):
            return NO_TRACE  # decided now when the conversation is named, else at the end
        return _LiveTrace(self, inbound, character_id, self._clock)

    def finished(self, record: TurnRecord) -> asyncio.Future[None] | None:
        """Queue ``record`` if its conversation is sampled; the future resolves once it is
        written (or lost: a failed write is logged, never raised)."""
        if not sampled(record.conversation_id, self.rate):
            return None
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            log.warning("turn record dropped: the write queue is full", turn=record.turn_id)
            return None
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        self._pending.append((record, written))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write())
        return written

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self.records.add([record for record, _ in batch])
            except Exception:  # recording explains turns; it must never break them
                self.dropped += len(batch)
                log.exception("turn records lost: the store failed", count=len(batch))
            for _, written in batch:
                if not written.done():
                    written.set_result(None)

    async def drain(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)


class _ClockedSpan(Span):
    """``inner``, with the duration of each stage started from it kept in ``stages``."""

    def __init__(self, inner: Span, stages: list[StageTime], name: str | None = None) -> None:
        self._inner = inner
        self._stages = stages
        self._name = name
        self._started = time.perf_counter()
        self._ended = False
        self.recording = inner.recording

    def child(self, name: str, **attributes: Attribute) -> Span:
        return _ClockedSpan(self._inner.child(name, **attributes), self._stages, name)

    def set(self, **attributes: Attribute) -> None:
        self._inner.set(**attributes)

    def fail(self, exc: BaseException) -> None:
        self._inner.fail(exc)

    def end(self) -> None:
        if self._name is not None and not self._ended:
            ms = (time.perf_counter() - self._started) * 1000
            self._stages.append(StageTime(self._name, ms))
        self._ended = True
        self._inner.end()

    def around(self, stream: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        return self._inner.around(stream)


class _LiveTrace(TurnTrace):
    def __init__(
        self,
        recorder: SampledRecorder,
        inbound: InboundMessage,
        character_id: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._recorder = recorder
        self._inbound = inbound
        self._character_id = character_id
        self._clock = clock
        self._started = time.perf_counter()
        self._stages: list[StageTime] = []
        self._routes: list[RouteTaken] = []
        self._skill: SkillTaken | None = None
        self._request: ChatRequest | None = None
        self._prompt: AssembledPrompt | None = None
        self._user_message_id = ""
        self._written: asyncio.Future[None] | None = None
        # A turn whose conversation is known only at its ack (the OpenAI API names none)
        # starts recording; once the ack shows the conversation is not sampled, it stops:
        # wrapping every chunk and building a record to throw away cost every such turn.
        self._recording = True

    def clock(self, span: Span) -> Span:
        return _ClockedSpan(span, self._stages)

    def skill(self, outcome: SkillOutcome) -> None:
        if outcome.skill is not None:
            ok = outcome.result is None or outcome.result.ok
            self._skill = SkillTaken(outcome.skill, ok, outcome.reply is not None, outcome.note)

    def prompted(self, request: ChatRequest, prompt: AssembledPrompt) -> None:
        self._request, self._prompt = request, prompt

    def listen(self, stream: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        if not self._recording:
            return stream
        return listening(stream, self._routes.append)

    def saw(self, event: TurnEvent) -> None:
        if isinstance(event, MessageAck):
            self._user_message_id = event.message.id
            self._recording = sampled(event.conversation.id, self._recorder.rate)
        elif isinstance(event, MessageDone) and self._recording:
            try:
                self._written = self._recorder.finished(self._record(event))
            except Exception:  # a bug here must not end a turn that has succeeded
                log.exception("turn record failed", turn=event.message.id)

    async def finish(self) -> None:
        if self._written is not None:
            await asyncio.shield(self._written)  # a cancelled turn leaves the write running

    def _record(self, done: MessageDone) -> TurnRecord:
        request, prompt, inbound = self._request, self._prompt, self._inbound
        messages = request.messages if request is not None else ()
        return TurnRecord(
            turn_id=done.message.id,
            conversation_id=done.conversation_id,
            user_message_id=self._user_message_id,
            user=inbound.user,
            character_id=self._character_id,
            character_version=done.message.character_version,
            created_at=self._clock(),
            model=done.message.model or "",
            prompt=messages,
            prompt_tokens=prompt.tokens if prompt is not None else 0,
            lore=prompt.lore if prompt is not None else (),
            lore_dropped=prompt.lore_dropped if prompt is not None else 0,
            memory_note=_memory_note(messages),
            knowledge=prompt.knowledge if prompt is not None else (),
            skill=self._skill,
            experiment=inbound.experiment,
            overrides=inbound.overrides,
            params=request.params if request is not None else GenerationParams(),
            routes=tuple(self._routes),
            stages=tuple(self._stages),
            total_ms=(time.perf_counter() - self._started) * 1000,
            usage=done.usage,
            latency_ms=done.latency_ms,
            first_token_ms=done.time_to_first_token_ms,
        )


def _memory_note(messages: Sequence[ChatMessage]) -> str | None:
    notes = [
        m.content
        for m in messages
        if m.role is Role.SYSTEM and m.content.startswith(MEMORY_HEADINGS)
    ]
    return "\n\n".join(notes) or None
