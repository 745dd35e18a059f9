"""The embedding job: gives pending memory items their vectors, a batch at a time.

Items are written pending, in the message's own transaction (``core.memory.capture``); this
job embeds them afterwards, so a turn never waits on the embedder. Whatever is pending when
the job starts (a crash, an embedder that was down, a new embedder model) is picked up first,
oldest first. A failure leaves the batch pending, is logged, and is retried after a backoff
that doubles up to ``max_backoff_s``; meanwhile recall finds those items by full text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from personae.core.ports import Embedder, MemoryStore

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class IndexingSettings:
    batch_size: int = 32
    idle_s: float = 1.0  # the wait before looking again once nothing is pending
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 60.0


class EmbeddingJob:
    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        settings: IndexingSettings | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._settings = settings or IndexingSettings()
        self._sleep = sleep
        self.embedded = 0  # items given a vector since start
        self.failures = 0  # failed batches in a row (0: healthy)

    async def run_once(self) -> int:
        """Embed one batch of pending items; how many got a vector (0: none pending)."""
        pending = await self._store.pending_embeddings(self._settings.batch_size)
        if not pending:
            return 0
        vectors = await self._embedder.embed([item.text for item in pending])
        done = await self._store.set_embeddings(
            {item.id: vector for item, vector in zip(pending, vectors, strict=True)}
        )
        self.embedded += done
        return len(pending)

    async def run_forever(self) -> None:
        """Embed until cancelled: batches back to back while items wait, then a look every
        ``idle_s``; after a failure, the backoff."""
        while True:
            try:
                count = await self.run_once()
            except Exception as exc:  # the embedder or the store: the items stay pending
                self.failures += 1
                delay = min(
                    self._settings.max_backoff_s,
                    self._settings.initial_backoff_s * 2 ** (self.failures - 1),
                )
                log.warning(
                    "memory embedding failed; items stay pending (full-text recall meanwhile)",
                    error=f"{type(exc).__name__}: {exc}",
                    failures=self.failures,
                    retry_in_s=delay,
                )
                await self._sleep(delay)
                continue
            if self.failures:
                log.info("memory embedding recovered", after_failures=self.failures)
            self.failures = 0
            if count < self._settings.batch_size:
                await self._sleep(self._settings.idle_s)
