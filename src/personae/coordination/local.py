"""In-process coordination for a single server process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from personae.core.ports import ConversationLock


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
