"""A thin blocking wrapper over ``PersonaeClient``: its event loop runs in a background thread.

with SyncPersonaeClient("http://127.0.0.1:8000", user="sam") as client:
    for text in client.stream("bram", "Can I come in?"):
        print(text, end="", flush=True)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

from personae.client.async_client import PersonaeClient

T = TypeVar("T")


class SyncPersonaeClient:
    def __init__(self, url: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = PersonaeClient(url, **options)

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def __enter__(self) -> Self:
        self._run(self._client.connect())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def stream(self, character: str, text: str, **options: Any) -> Iterator[str]:
        """Send ``text`` and yield the reply's chunks as they arrive."""
        reply = self._run(self._client.send(character, text, **options))
        chunks = aiter(reply)

        async def next_chunk() -> str:
            return await anext(chunks)

        while True:
            try:
                yield self._run(next_chunk())
            except StopAsyncIteration:
                return

    def send(self, character: str, text: str, **options: Any) -> dict[str, Any]:
        """Send ``text`` and return the final ``message.done`` payload."""

        async def whole() -> dict[str, Any]:
            reply = await self._client.send(character, text, **options)
            return await reply.done()

        return self._run(whole())

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._run(self._client.request(method, params))
