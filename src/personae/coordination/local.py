"""In-process coordination for a single server process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from personae.core.events import ConversationEvent
from personae.core.ports import ConversationLock, EventBus, InflightTurn, InflightTurns


class LocalConversationLock(ConversationLock):
    """One FIFO ``asyncio.Lock`` per key, kept only while someone holds or waits for it, so
    millions of conversations over a server's life do not accumulate locks."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """How many keys are held or waited for (for tests and metrics)."""
        return len(self._locks)


class LocalEventBus(EventBus):
    """In-process fan-out: one unbounded queue per subscription. Queues stay short because
    each subscriber hands events on to its connection's bounded outbox at once, and a
    connection that cannot keep up is dropped there, not here."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[ConversationEvent]]] = {}

    async def publish(self, event: ConversationEvent) -> None:
        for queue in self._subscribers.get(event.conversation_id, ()):
            queue.put_nowait(event)

    @asynccontextmanager
    async def subscribe(
        self, conversation_id: str
    ) -> AsyncIterator[AsyncIterator[ConversationEvent]]:
        queue: asyncio.Queue[ConversationEvent] = asyncio.Queue()
        self._subscribers.setdefault(conversation_id, set()).add(queue)
        try:
            yield _drain(queue)
        finally:
            subscribers = self._subscribers[conversation_id]
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[conversation_id]

    def subscriber_count(self, conversation_id: str) -> int:
        return len(self._subscribers.get(conversation_id, ()))


async def _drain(queue: asyncio.Queue[ConversationEvent]) -> AsyncIterator[ConversationEvent]:
    while True:
        yield await queue.get()


class LocalInflightTurns(InflightTurns):
    """This process's turns; none is ever orphaned (they die with the process)."""

    def __init__(self) -> None:
        self._turns: dict[str, InflightTurn] = {}

    async def begin(self, turn: InflightTurn) -> None:
        self._turns[turn.key] = turn

    async def end(self, key: str) -> None:
        self._turns.pop(key, None)

    async def get(self, key: str) -> InflightTurn | None:
        return self._turns.get(key)

    async def orphans(self) -> list[InflightTurn]:
        return []
