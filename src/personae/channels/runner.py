"""Runs one channel: its listener under supervision (reconnects, see ``supervision``), its
outbox worker, and one task per inbound message, all owned here so a channel that fails or
hangs stops nothing but itself. ``ChannelSet`` holds every configured channel."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_never

from personae.channels.bridge import ChannelBridge
from personae.channels.identity import Identities
from personae.channels.supervision import ReconnectPolicy, Reconnects
from personae.core.breaker import BreakerState
from personae.core.channels import ChannelGateway, PlatformMessage, PushChannel
from personae.errors import NotFound

log = structlog.get_logger(__name__)


class ChannelRunner:
    def __init__(
        self,
        bridge: ChannelBridge,
        reconnect: ReconnectPolicy | None = None,
        *,
        max_handlers: int = 32,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bridge = bridge
        self.channel = bridge.channel
        self.worker = bridge.worker
        self.reconnects = Reconnects(reconnect or ReconnectPolicy(), clock=clock)
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max_handlers)  # inbound messages handled at once
        self._handlers: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.state = "stopped"
        self.last_error: str | None = None
        self.connections = 0  # successful connections, for health and tests

    @property
    def name(self) -> str:
        return self.channel.name

    def health(self) -> str:
        if self.state in ("reconnecting", "down") and self.last_error:
            return f"{self.state}: {self.last_error}"
        if self.state == "up" and self.worker.breaker.state is BreakerState.OPEN:
            return "up, circuit open: deliveries wait for a probe"
        return self.state

    async def start(self) -> None:
        await self.channel.start()
        self.state = "starting"
        self._tasks = [
            asyncio.create_task(self._supervise(), name=f"channel {self.name}"),
            asyncio.create_task(self.worker.run(), name=f"outbox {self.name}"),
        ]
        self._spawn(self.bridge.resume)  # replies owed from before a restart

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop listening; let messages being answered finish within ``grace_s``."""
        listener = self._tasks[0] if self._tasks else None
        if listener is not None:
            listener.cancel()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=grace_s)
        for task in [*self._handlers, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._handlers, *self._tasks, return_exceptions=True)
        self._tasks = []
        self.state = "stopped"
        await self.channel.stop()

    async def receive(self, message: PlatformMessage) -> None:
        """Take one inbound message; waits (backpressure on the platform) while
        ``max_handlers`` are being answered."""
        await self._slots.acquire()
        self._spawn(lambda: self.bridge.handle(message), holds_slot=True)

    def _spawn(self, work: Callable[[], Awaitable[None]], *, holds_slot: bool = False) -> None:
        async def guarded() -> None:
            try:
                await work()
            except Exception:
                log.exception("channel handler failed", channel=self.name)
            finally:
                if holds_slot:
                    self._slots.release()

        task = asyncio.create_task(guarded())
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def _connected(self) -> None:
        self.state = "up"
        self.last_error = None
        self.connections += 1
        self.reconnects.connected()
        self.worker.resume()  # deliver what waited while the platform was away
        log.info("channel connected", channel=self.name)

    async def _supervise(self) -> None:
        def went_down(state: object) -> None:
            self.state = "down" if self.reconnects.cooling else "reconnecting"

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=self.reconnects,
            stop=stop_never,
            sleep=self._sleep,
            before_sleep=went_down,
            reraise=True,
        )
        await retrying(self._listen_once)

    async def _listen_once(self) -> None:
        try:
            await self.channel.listen(self.receive, self._connected)
        except Exception as exc:
            self.last_error = _describe(exc)
            log.warning("channel disconnected", channel=self.name, error=self.last_error)
            raise


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else type(exc).__name__


class ChannelSet(ChannelGateway):
    """Every configured channel: started together, stopped together, failing apart."""

    def __init__(
        self,
        runners: Mapping[str, ChannelRunner],
        identities: Identities,
        *,
        grace_s: float = 5.0,
    ) -> None:
        self.runners = dict(runners)
        self.identities = identities
        self.grace_s = grace_s

    async def __aenter__(self) -> ChannelSet:
        started: list[ChannelRunner] = []
        try:
            for runner in self.runners.values():
                await runner.start()
                started.append(runner)
        except BaseException:
            for runner in reversed(started):
                await runner.stop(grace_s=0)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for runner in self.runners.values():
            with contextlib.suppress(Exception):
                await runner.stop(grace_s=self.grace_s)

    async def push(self, name: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        runner = self.runners.get(name)
        if runner is None or not isinstance(runner.channel, PushChannel):
            raise NotFound(f"no channel {name!r} takes pushed updates", channel=name)
        pushed = await runner.channel.accept(headers, body)
        for message in pushed.messages:
            await runner.receive(message)
        if pushed.answer is not None:
            return dict(pushed.answer)
        return {"accepted": len(pushed.messages)}

    async def issue_link_code(self, user: str) -> tuple[str, datetime]:
        return await self.identities.issue_code(user)

    def health(self) -> dict[str, str]:
        return {name: runner.health() for name, runner in self.runners.items()}
