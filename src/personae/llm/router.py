"""A chain of backends that behaves as one ChatModel: primary first, then fallbacks.

Per turn: walk the chain until a backend produces its first text or tool call. A failure
before that is classified (``failures.classify``) and never reaches the user: transient ones
(429, 5xx, timeouts, lost connections) pass to the next backend at once and earn the backend
another round after a backoff (``retry``); a backend that cannot serve the request is not
asked again this turn; a request that no backend could serve ends the turn at once. Backends
whose circuit is open are passed over. Once text (or a tool call) has streamed, the chain is
committed: a later failure is raised as it is, so the service stores the partial reply as
incomplete. Each round of a tool loop (``core/tool_loop.py``) is a request of its own,
routed afresh.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

import structlog

from personae.core.ports import ChatModel
from personae.core.route_log import Attempt, RouteTaken, report_route
from personae.core.tool_calls import without_tools
from personae.core.types import ChatRequest, ModelChunk
from personae.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigurationError,
    PersonaeError,
)
from personae.llm.cache import ResponseCache
from personae.llm.failures import Verdict, classify
from personae.llm.guard import GuardedBackend, LiveReply, Skipped
from personae.llm.retry import RetryPolicy, Timekeeper, run_with_retries
from personae.llm.stats import ChainSnapshot, ChainStats

log = structlog.get_logger(__name__)


class _RoundFailed(Exception):
    """No backend of the chain answered in this round."""

    def __init__(self, worth_retrying: bool) -> None:
        super().__init__("no backend answered in this round")
        self.worth_retrying = worth_retrying


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, _RoundFailed) and exc.worth_retrying


@dataclass
class _Turn:
    """What happened to one turn's attempts, for the error that ends it if all fail."""

    rounds: int = 0
    excluded: set[str] = field(default_factory=set)  # not to be asked again this turn
    outcomes: dict[str, BaseException] = field(default_factory=dict)  # last one per backend
    attempts: dict[str, int] = field(default_factory=dict)
    failures: list[Attempt] = field(default_factory=list)  # in order, for the turn's record

    def note(self, backend: str, outcome: BaseException) -> None:
        self.outcomes[backend] = outcome
        self.attempts[backend] = self.attempts.get(backend, 0) + 1
        self.failures.append(Attempt(backend, _detail(outcome)))

    def taken(self, chain: tuple[str, ...], backend: str | None) -> RouteTaken:
        return RouteTaken(chain, backend, max(1, self.rounds), tuple(self.failures))


class RoutedChatModel(ChatModel):
    def __init__(
        self,
        chain: Sequence[GuardedBackend],
        *,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
        name: str | None = None,
        time: Timekeeper | None = None,
    ) -> None:
        if not chain:
            raise ConfigurationError("a chain needs at least one backend")
        self.chain = tuple(chain)
        self._names = tuple(backend.name for backend in self.chain)
        # PII is redacted if any backend of the chain may be reached over the network.
        self.remote = any(backend.model.remote for backend in self.chain)
        # Tools are offered if any backend can call them; the others get the request without
        # them (``without_tools``), so a fallback still answers, using the results so far.
        self.supports_tools = any(backend.model.supports_tools for backend in self.chain)
        # Stored replies name their model; a lone backend keeps its own name.
        self.name = name or ">".join(backend.name for backend in self.chain)
        self.retry = retry or RetryPolicy()
        self.stats = ChainStats()
        self._cache = cache
        self._time = time or Timekeeper()

    def __repr__(self) -> str:
        return f"RoutedChatModel({self.name!r})"

    # Prompts are assembled for the primary; fallbacks should have at least its context.
    def count_tokens(self, text: str) -> int:
        return self.chain[0].model.count_tokens(text)

    @property
    def context_window(self) -> int | None:
        return self.chain[0].model.context_window

    async def open(self) -> None:
        opened: list[GuardedBackend] = []
        try:
            for backend in self.chain:
                await backend.open()
                opened.append(backend)
        except BaseException:
            for backend in reversed(opened):
                await backend.close()
            raise

    async def close(self) -> None:
        for backend in reversed(self.chain):
            await backend.close()

    def snapshot(self) -> ChainSnapshot:
        s = self.stats
        names = tuple(backend.name for backend in self.chain)
        return ChainSnapshot(
            self.name, names, s.turns, s.failovers, s.retries, s.exhausted, s.cache_hits
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        self.stats.turns += 1
        key = ResponseCache.key(self.name, request) if self._cache is not None else None
        if key is not None and self._cache is not None:
            cached = self._cache.get(key)
            if cached is not None:
                self.stats.cache_hits += 1
                report_route(RouteTaken(self._names, None, cached=True))
                for chunk in cached:
                    yield chunk
                return
        reply = await self._start(request)
        recorded: list[ModelChunk] = []
        try:
            async with aclosing(reply.chunks()) as chunks:
                async for chunk in chunks:
                    if key is not None:
                        recorded.append(chunk)
                    yield chunk
        finally:
            await reply.abandon()  # a no-op once the reply has ended, as it normally has
        if key is not None and self._cache is not None:
            self._cache.put(key, tuple(recorded))

    async def _start(self, request: ChatRequest) -> LiveReply:
        turn = _Turn()

        async def attempt() -> LiveReply:
            return await self._round(request, turn)

        try:
            reply = await run_with_retries(
                self.retry, attempt, retryable=_worth_retrying, time=self._time
            )
        except _RoundFailed:
            self.stats.exhausted += 1
            self.stats.retries += turn.rounds - 1
            report_route(turn.taken(self._names, None))
            raise self._give_up(turn) from None
        self.stats.retries += turn.rounds - 1
        self.stats.failovers += reply.backend is not self.chain[0]
        report_route(turn.taken(self._names, reply.backend.name))
        return reply

    async def _round(self, request: ChatRequest, turn: _Turn) -> LiveReply:
        turn.rounds += 1
        candidates = [b for b in self.chain if b.name not in turn.excluded]
        worth_retrying = False
        for index, backend in enumerate(candidates):
            # A busy backend is passed over while a later one could start now; else it queues.
            queue = backend.busy and not any(b.available() for b in candidates[index + 1 :])
            try:
                asked = request if backend.model.supports_tools else without_tools(request)
                return await backend.start(asked, queue=queue)
            except Skipped as skipped:
                turn.note(backend.name, skipped)
                continue
            except PersonaeError as exc:
                verdict = classify(exc)
                if verdict is Verdict.FATAL:
                    raise
                turn.note(backend.name, exc)
                if verdict is Verdict.FAILOVER:
                    turn.excluded.add(backend.name)
                worth_retrying |= verdict is Verdict.RETRY
                log.warning(
                    "backend failed before replying",
                    chain=self.name,
                    backend=backend.name,
                    code=exc.code,
                    verdict=verdict.value,
                    error=str(exc),
                )
        raise _RoundFailed(worth_retrying)

    def _give_up(self, turn: _Turn) -> BackendError:
        """The error that ends a turn no backend could answer. A single backend that failed
        on its own is reported as it failed; otherwise the error lists every backend."""
        outcomes = turn.outcomes
        errors = [e for e in outcomes.values() if isinstance(e, BackendError)]
        if len(outcomes) == 1 and len(errors) == 1:
            return errors[0]
        kinds = {_kind(outcome) for outcome in outcomes.values()}
        kind = kinds.pop() if len(kinds) == 1 else BackendUnavailable
        details = "; ".join(
            f"{name}: {_detail(outcome)}" + _times(turn.attempts[name])
            for name, outcome in outcomes.items()
        )
        return kind(
            f"no backend could answer; tried {details}",
            backend=self.name,
            tried=list(outcomes),
        )


def _kind(outcome: BaseException) -> type[BackendError]:
    for kind in (BackendTimeout, BackendProtocolError):
        if isinstance(outcome, kind):
            return kind
    return BackendUnavailable


def _detail(outcome: BaseException) -> str:
    if isinstance(outcome, Skipped):
        return outcome.reason
    if isinstance(outcome, BackendError):
        return str(outcome).removeprefix(f"backend {outcome.backend!r}: ")
    return str(outcome)


def _times(attempts: int) -> str:
    return f" ({attempts} attempts)" if attempts > 1 else ""
