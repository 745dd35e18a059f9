"""The delivery side of the durable outbox: one worker per channel sends what is due, in order
within each chat, and reschedules what failed.

A final reply is stored in the outbox before the first attempt to send it, so a platform
that is down (or a process that restarts) delays it but never loses it. A 429 pauses the
whole channel for ``retry_after``; other temporary failures back off per message,
exponentially with jitter, up to ``max_attempts``; a refusal (4xx) is given up at once and
the row kept, marked ``failed``. A circuit breaker (``core/breaker.py``, the one the model
router uses) stops the attempts after ``breaker_failures`` platform failures in a row: while
it is open nothing is sent, then one message probes, and its outcome closes or reopens it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from personae.channels.errors import (
    MessageGone,
    PlatformError,
    PlatformRateLimited,
    PlatformUnavailable,
)
from personae.core.breaker import CircuitBreaker
from personae.core.channels import ChannelOutbox, NewOutboxItem, OutboxItem
from personae.core.ports import Channel

log = structlog.get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    max_attempts: int = 20
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    breaker_failures: int = 5  # platform failures in a row that open the circuit
    breaker_reset_s: float = 30.0  # how long it stays open before a message probes

    def backoff_s(self, attempts: int, uniform: Callable[[float, float], float]) -> float:
        """After the ``attempts``-th failure: the window doubles, half of it is jitter."""
        window = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** max(0, attempts - 1))
        return uniform(window / 2, window)


class OutboxWorker:
    def __init__(
        self,
        channel: Channel,
        store: ChannelOutbox,
        policy: OutboxPolicy | None = None,
        *,
        now: Callable[[], datetime] = utc_now,
        uniform: Callable[[float, float], float] = random.uniform,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self.store = store
        self.policy = policy or OutboxPolicy()
        self.breaker = CircuitBreaker(
            f"channel {channel.name}",
            failure_threshold=self.policy.breaker_failures,
            reset_timeout_s=self.policy.breaker_reset_s,
            clock=clock,
        )
        self._now = now
        self._uniform = uniform
        self._wakeup = asyncio.Event()
        self._paused_until: datetime | None = None
        self._resume_all = False  # next pass: everything pending is due (reconnected)
        self._last_unavailable = False  # the last failed attempt found the platform down
        self.delivered = 0  # counters for health and tests
        self.failed = 0

    async def enqueue(self, items: Sequence[NewOutboxItem]) -> None:
        """Store ``items`` (durably, before any attempt) and wake the worker."""
        if items:
            await self.store.enqueue(items, self._now())
            self.wake()

    def wake(self) -> None:
        """Look at the outbox now (new items); a rate-limit pause still holds."""
        self._wakeup.set()

    def hold(self, retry_after_s: float) -> None:
        """The platform said 429 elsewhere (a streaming edit): nothing goes out before
        ``retry_after_s``, since the limit is the bot's, not the request's."""
        until = self._now() + timedelta(seconds=retry_after_s)
        if self._paused_until is None or until > self._paused_until:
            self._paused_until = until

    def resume(self) -> None:
        """The platform is back (reconnected): retry what waits, pause or not."""
        self._paused_until = None
        self._resume_all = True
        self.breaker.probe_now()
        self._wakeup.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            self._wakeup.clear()
            try:
                await self.drain()
            except Exception:  # a storage failure: keep the worker, try again shortly
                log.exception("outbox pass failed", channel=self.channel.name)
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        due = await self.store.next_due_at(self.channel.name)
        if self._paused_until is not None:
            due = max(due, self._paused_until) if due is not None else None
        timeout = None if due is None else max(0.0, (due - self._now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()

    async def drain(self) -> int:
        """Deliver everything due now; returns how many messages went out."""
        sent = 0
        while True:
            now = self._now()
            if self._paused_until is not None and now < self._paused_until:
                return sent
            if self._resume_all:  # back-off delays were for a platform that is back now
                self._resume_all = False
                await self.store.reschedule_all(self.channel.name, now)
            items = await self.store.due(self.channel.name, now)
            if not items:
                return sent
            progressed = False
            for item in items:
                permit = self.breaker.admit()
                if permit is None:  # open: wait for the time a probe may go
                    retry_in = self.breaker.snapshot().retry_in_s or 0.0
                    self._paused_until = now + timedelta(seconds=max(retry_in, 0.01))
                    return sent
                outcome = await self._attempt(item)
                if outcome in ("delivered", "retarget"):
                    self.breaker.succeeded(permit)
                elif outcome == "later" or (outcome == "failed" and self._last_unavailable):
                    self.breaker.failed(permit)
                else:  # rate limited, or refused: no verdict on whether the platform is up
                    self.breaker.released(permit)
                sent += outcome == "delivered"
                progressed = progressed or outcome != "later"
                if outcome == "paused":
                    return sent
            if not progressed:
                return sent

    async def _attempt(self, item: OutboxItem) -> str:
        name = self.channel.name
        try:
            if item.action == "edit" and item.target is not None:
                await self.channel.edit(item.chat, item.target, item.text)
                platform_id: str | None = item.target
            else:
                platform_id = await self.channel.send(item.chat, item.text, reply_to=item.reply_to)
        except MessageGone:
            await self.store.retarget(item.id, "send", None)  # the streamed message is gone
            return "retarget"
        except PlatformRateLimited as exc:
            until = self._now() + timedelta(seconds=exc.retry_after)
            self._paused_until = until
            await self.store.retry_later(item.id, until, exc.message)
            log.info("platform rate limit", channel=name, retry_after=exc.retry_after)
            return "paused"
        except PlatformUnavailable as exc:
            self._last_unavailable = True
            return await self._failed(item, exc.message, permanent=False)
        except PlatformError as exc:
            self._last_unavailable = False
            return await self._failed(item, exc.message, permanent=True)
        except Exception as exc:  # an adapter bug must not lose the message
            log.exception("delivery raised", channel=name, item=item.id)
            self._last_unavailable = True
            return await self._failed(item, type(exc).__name__, permanent=False)
        await self.store.delivered(item.id, self._now(), platform_id)
        self.delivered += 1
        return "delivered"

    async def _failed(self, item: OutboxItem, error: str, *, permanent: bool) -> str:
        attempts = item.attempts + 1
        if permanent or attempts >= self.policy.max_attempts:
            await self.store.give_up(item.id, self._now(), error)
            self.failed += 1
            log.warning(
                "platform message given up", channel=self.channel.name, item=item.id, error=error
            )
            return "failed"
        delay = self.policy.backoff_s(attempts, self._uniform)
        await self.store.retry_later(item.id, self._now() + timedelta(seconds=delay), error)
        return "later"
