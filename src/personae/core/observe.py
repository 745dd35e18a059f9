"""The observer port: what the core tells the outside world about turns, for metrics and logs.

``ChatService`` reports every turn that ran (``turn_finished``, once, whatever its outcome);
``ConversationHub`` and the transports report what they refused (``request_rejected``). The
base class does nothing, so the core runs unobserved by default; ``observability/`` implements
it with Prometheus metrics and a log line per turn.

Observers are called on the event loop, inside the turn: they must be quick, must not block,
and must not raise (``core/turn_report.py`` logs and swallows an observer's exception so that
a metrics bug cannot end a turn). No message text ever passes through this port.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass

from personae.core.events import MessageAck, MessageDelta, MessageDone, TurnEvent
from personae.errors import BackendError


class TurnOutcome(enum.StrEnum):
    OK = "ok"  # the reply was complete and stored
    INCOMPLETE = "incomplete"  # the backend failed midway; the text that arrived was kept
    FAILED = "failed"  # the backend failed before producing any text
    CANCELLED = "cancelled"  # the client went away or the turn was cancelled
    ERROR = "error"  # anything else: the prompt did not fit, storage failed, a bug


@dataclass(frozen=True, slots=True)
class TurnReport:
    """How one turn went. ``backend`` names the route that served it (a chain is ``a>b``);
    ``latency_ms`` runs from the start of the turn to its end, ``ttft_ms`` to its first reply
    text (``None``: there was none). Tokens are the backend's usage for a complete reply, and 0
    for any other outcome."""

    character: str
    backend: str
    outcome: TurnOutcome
    latency_ms: float
    ttft_ms: float | None
    tokens_in: int
    tokens_out: int
    # For experiments (docs/experiments.md): set when a variant ran the turn; the ids and
    # lengths let a report count users and join feedback, and never carry message text.
    experiment: str | None = None  # the experiment's id
    variant: str | None = None
    user: str = ""
    conversation: str | None = None
    reply_id: str | None = None  # the stored reply (None: the turn stored none)
    user_chars: int = 0  # the user message's length
    conversation_messages: int = 0  # messages in the conversation once the turn opened


class TurnObserver:
    """Does nothing; subclasses override what they care about."""

    def turn_finished(self, report: TurnReport) -> None:
        """A turn ended."""

    def request_rejected(self, reason: str) -> None:
        """A message (or request) was refused before any turn started: ``overloaded``,
        ``busy``, ``shutting_down``, ``rate_limited``, ``too_many_pending``, ..."""

    def skill_called(self, skill: str, *, ok: bool) -> None:
        """A skill ran in a turn (a slash command or a trigger); ``ok``: it did not fail."""

    def moderation_hit(self, stage: str, action: str, count: int) -> None:
        """Blocked words matched: ``stage`` input or output, ``action`` block, mask or flag."""

    def recall_finished(self, latency_ms: float, *, hits: int) -> None:
        """Memory recall for a turn ended (the memory stage calls this), ``hits`` items."""

    def feedback_given(self, experiment: str, variant: str, value: int) -> None:
        """A user rated (+1/-1) a reply that an experiment's variant wrote."""


class ObserverFanout(TurnObserver):
    """Passes every call on to several observers, in order."""

    def __init__(self, observers: Iterable[TurnObserver]) -> None:
        self.observers = tuple(observers)

    def turn_finished(self, report: TurnReport) -> None:
        for observer in self.observers:
            observer.turn_finished(report)

    def request_rejected(self, reason: str) -> None:
        for observer in self.observers:
            observer.request_rejected(reason)

    def skill_called(self, skill: str, *, ok: bool) -> None:
        for observer in self.observers:
            observer.skill_called(skill, ok=ok)

    def moderation_hit(self, stage: str, action: str, count: int) -> None:
        for observer in self.observers:
            observer.moderation_hit(stage, action, count)

    def recall_finished(self, latency_ms: float, *, hits: int) -> None:
        for observer in self.observers:
            observer.recall_finished(latency_ms, hits=hits)

    def feedback_given(self, experiment: str, variant: str, value: int) -> None:
        for observer in self.observers:
            observer.feedback_given(experiment, variant, value)


class TurnTally:
    """Watches one turn's events and how it ended, then reports it once (``TurnReporter``)."""

    __slots__ = ("_ack", "_done", "_first_text_at", "_outcome", "duplicate", "parts", "started")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.duplicate = False  # a retried idempotency key: no turn ran, nothing to report
        self.parts: list[str] = []  # the reply text as it streamed
        self._first_text_at: float | None = None
        self._done: MessageDone | None = None
        self._ack: MessageAck | None = None
        self._outcome: TurnOutcome | None = None

    def saw(self, event: TurnEvent) -> None:
        if isinstance(event, MessageDelta):
            if self._first_text_at is None:
                self._first_text_at = time.perf_counter()
            self.parts.append(event.text)
        elif isinstance(event, MessageDone):
            self._done = event
        elif isinstance(event, MessageAck):
            self._ack = event
            self.duplicate = event.duplicate

    def ended_by(self, exc: BaseException) -> None:
        if self._done is not None:
            return  # complete: its consumer just closed the stream after the last event
        if isinstance(exc, BackendError):
            self._outcome = TurnOutcome.INCOMPLETE if self.parts else TurnOutcome.FAILED
        elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self._outcome = TurnOutcome.CANCELLED
        else:
            self._outcome = TurnOutcome.ERROR

    @property
    def outcome(self) -> TurnOutcome:
        if self._outcome is not None:
            return self._outcome
        # Ended without an exception: complete, or abandoned by its consumer before the end.
        return TurnOutcome.OK if self._done is not None else TurnOutcome.CANCELLED

    @property
    def reply_text(self) -> str:
        return "".join(self.parts)

    def report(
        self,
        observer: TurnObserver,
        *,
        character: str,
        backend: str,
        experiment: str | None = None,
        variant: str | None = None,
        user: str = "",
        user_chars: int = 0,
    ) -> None:
        done = self._done if self.outcome is TurnOutcome.OK else None
        first = self._first_text_at
        ack = self._ack
        observer.turn_finished(
            TurnReport(
                character=character,
                backend=backend,
                outcome=self.outcome,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                ttft_ms=(first - self.started) * 1000 if first is not None else None,
                tokens_in=done.usage.prompt_tokens if done else 0,
                tokens_out=done.usage.completion_tokens if done else 0,
                experiment=experiment,
                variant=variant,
                user=user,
                conversation=ack.conversation.id if ack else None,
                reply_id=self._done.message.id if self._done else None,
                user_chars=user_chars,
                conversation_messages=ack.conversation.last_seq if ack else 0,
            )
        )
