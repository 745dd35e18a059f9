"""One backend with its guards: a circuit breaker, a concurrency limit, a bound on the time to
the first token and on the whole reply, and counters. Shared by every chain that names it.

A call has two phases. ``start`` runs until the backend has produced its first non-blank
text, or failed; nothing has reached the user yet, so the router may still fail over. Then
``LiveReply.chunks`` streams the rest; a failure now is raised as it is, never hidden behind
another backend's words.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from personae.core.breaker import CircuitBreaker, Permit
from personae.core.ports import ChatModel
from personae.core.types import ChatRequest, ModelChunk
from personae.errors import BackendProtocolError, BackendTimeout, PersonaeError
from personae.llm.failures import classify
from personae.llm.stats import BackendSnapshot, BackendStats


@dataclass(frozen=True, slots=True)
class BackendLimits:
    first_token_timeout_s: float | None = 60.0  # includes waiting for a concurrency slot
    total_timeout_s: float | None = 600.0
    max_concurrency: int | None = None  # None: unlimited
    failure_threshold: int = 5  # consecutive failures that open the breaker
    reset_timeout_s: float = 30.0  # how long it stays open before a probe


class Skipped(Exception):
    """The backend was passed over without being called. Never leaves the router."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"{backend}: {reason}")
        self.backend = backend
        self.reason = reason


class _Abandoned(Exception):
    """The outcome of a call whose consumer left before it ended."""


class GuardedBackend:
    def __init__(
        self,
        model: ChatModel,
        limits: BackendLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.name = model.name
        self.limits = limits = limits or BackendLimits()
        self.breaker = CircuitBreaker(
            model.name,
            failure_threshold=limits.failure_threshold,
            reset_timeout_s=limits.reset_timeout_s,
            clock=clock,
        )
        self.stats = BackendStats()
        self._slots = asyncio.Semaphore(limits.max_concurrency) if limits.max_concurrency else None
        self._opened = 0

    def __repr__(self) -> str:
        return f"GuardedBackend({self.model!r})"

    async def open(self) -> None:
        # Counted: several chains may open the same backend.
        if self._opened == 0:
            await self.model.open()
        self._opened += 1

    async def close(self) -> None:
        if self._opened == 1:
            await self.model.close()
        self._opened = max(0, self._opened - 1)

    @property
    def busy(self) -> bool:
        return self._slots is not None and self._slots.locked()

    def available(self) -> bool:
        """Whether a call could start now without waiting (for deciding whether to queue)."""
        return not self.busy and self.breaker.would_admit()

    def snapshot(self) -> BackendSnapshot:
        return BackendSnapshot.of(self.name, self.stats, self.breaker.snapshot())

    async def start(self, request: ChatRequest, *, queue: bool) -> LiveReply:
        """Call the backend and wait for its first text. ``queue``: wait for a free slot
        (within the first-token time) instead of passing over a busy backend.

        Raises ``Skipped`` (busy, circuit open) or what the backend raised."""
        if self.busy and not queue:
            self.stats.skipped_busy += 1
            raise Skipped(self.name, "busy")
        permit = self.breaker.admit()
        if permit is None:
            self.stats.skipped_open += 1
            raise Skipped(self.name, "circuit open")
        limits = self.limits
        started = asyncio.get_running_loop().time()
        total = started + limits.total_timeout_s if limits.total_timeout_s else None
        first = started + limits.first_token_timeout_s if limits.first_token_timeout_s else None
        if first is None or (total is not None and total < first):
            first = total
        try:
            await self._take_slot(first)
        except BaseException:
            self.breaker.released(permit)  # our own queue, not the backend's fault
            raise
        reply = LiveReply(self, permit, self.model.stream(request), started, first, total)
        self.stats.calls += 1
        self.stats.in_flight += 1
        try:
            await reply.wait_for_text()
        except BaseException as exc:
            await reply.end(exc)
            raise
        return reply

    async def _take_slot(self, deadline: float | None) -> None:
        if self._slots is None:
            return
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:
            self.stats.skipped_busy += 1
            raise BackendTimeout(
                f"no free slot (concurrency limit {self.limits.max_concurrency}) within "
                f"{self.limits.first_token_timeout_s} s",
                backend=self.name,
            ) from None

    def release_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()


class LiveReply:
    """A call that is under way: the chunks up to the first text in ``head``, then the rest."""

    def __init__(
        self,
        backend: GuardedBackend,
        permit: Permit,
        stream: AsyncGenerator[ModelChunk, None],
        started: float,
        first_deadline: float | None,
        deadline: float | None,
    ) -> None:
        self.backend = backend
        self.head: list[ModelChunk] = []
        self._permit = permit
        self._stream = stream
        self._started = started
        self._first_deadline = first_deadline
        self._deadline = deadline
        self._ended = False
        self._delivered = False  # whether any text has gone on towards the user
        # One timer per deadline, not an ``asyncio.timeout`` per chunk (a timer handle
        # scheduled and cancelled for every token was a tenth of a streamed turn's CPU):
        # it cancels the read under way, if any, as the timeout would have.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._reader: asyncio.Task[object] | None = None  # the task reading a chunk now
        self._fired_on: asyncio.Task[object] | None = None  # the read the timer cancelled

    async def wait_for_text(self) -> None:
        """Read until a chunk carries non-blank text or a tool call: until then, failing over
        is invisible to the user (a tool call commits too: another backend would not finish
        this one's call). A reply that ends first is an empty completion."""
        while True:
            chunk = await self._next(self._first_deadline, midway=False)
            if chunk is None:
                raise BackendProtocolError("the stream ended without text", backend=self._name)
            self.head.append(chunk)
            if chunk.text.strip() or chunk.tool_calls:
                elapsed = asyncio.get_running_loop().time() - self._started
                self.backend.stats.first_token = self.backend.stats.first_token.add(elapsed)
                return
            if chunk.finish_reason is not None:
                raise BackendProtocolError("the model returned an empty reply", backend=self._name)

    async def chunks(self) -> AsyncGenerator[ModelChunk, None]:
        """The whole reply, ``head`` first. Ends the call (breaker, counters, slot) however the
        consumer leaves; use it with ``contextlib.aclosing``."""
        try:
            self._delivered = True
            for chunk in self.head:
                yield chunk
            while (more := await self._next(self._deadline, midway=True)) is not None:
                yield more
        except BaseException as exc:
            await self.end(exc)
            raise
        await self.end(None)

    async def abandon(self) -> None:
        """End the call without a verdict, unless it has ended already."""
        await self.end(_Abandoned())

    async def end(self, error: BaseException | None) -> None:
        """Record the outcome once and give back what the call held."""
        if self._ended:
            return
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        backend, stats = self.backend, self.backend.stats
        try:
            await self._stream.aclose()
        finally:
            stats.in_flight -= 1
            backend.release_slot()
            if error is None:
                stats.successes += 1
                elapsed = asyncio.get_running_loop().time() - self._started
                stats.duration = stats.duration.add(elapsed)
                backend.breaker.succeeded(self._permit)
            elif isinstance(error, PersonaeError) and classify(error).counts_against_backend:
                stats.failures += 1
                stats.midway_failures += self._delivered
                stats.errors[error.code] += 1
                backend.breaker.failed(self._permit)
            else:  # cancelled, a bad request, or a bug: no verdict on the backend's health
                backend.breaker.released(self._permit)

    @property
    def _name(self) -> str:
        return self.backend.name

    async def _next(self, deadline: float | None, *, midway: bool) -> ModelChunk | None:
        if deadline is None:
            try:
                return await anext(self._stream)
            except StopAsyncIteration:
                return None
        loop = asyncio.get_running_loop()
        if deadline <= loop.time():  # already past (a slow consumer): asyncio's own way
            return await self._next_by_timeout(deadline, midway=midway)
        if self._timer_at != deadline:
            self._arm(loop, deadline)
        task = asyncio.current_task()
        assert task is not None  # a coroutine of a running loop is always in a task
        cancelling = task.cancelling()
        self._reader = task
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            if self._fired_on is task:
                self._fired_on = None
                # Ours unless someone else asked to cancel too (asyncio.Timeout's rule).
                if task.uncancel() <= cancelling:
                    raise self._timed_out(midway=midway) from None
            raise
        finally:
            self._reader = None
            if self._fired_on is task:  # fired as the read ended anyway: withdraw the cancel
                self._fired_on = None
                task.uncancel()

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        reader = self._reader
        if reader is not None and not reader.done():
            self._fired_on = reader
            reader.cancel()
        # No read under way: the next one finds the deadline past and times out itself.

    async def _next_by_timeout(self, deadline: float, *, midway: bool) -> ModelChunk | None:
        try:
            async with asyncio.timeout_at(deadline) as timer:
                return await anext(self._stream)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            if not timer.expired():
                raise
            raise self._timed_out(midway=midway) from None

    def _timed_out(self, *, midway: bool) -> BackendTimeout:
        limits = self.backend.limits
        if midway or self._first_deadline == self._deadline:
            return BackendTimeout(
                f"the reply took longer than {limits.total_timeout_s} s", backend=self._name
            )
        return BackendTimeout(
            f"no text within {limits.first_token_timeout_s} s", backend=self._name
        )
