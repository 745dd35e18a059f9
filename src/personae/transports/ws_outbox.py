"""A connection's outgoing frames: bounded, so that one slow reader costs one connection, and
able to merge a run of queued deltas into one frame (at most one delta frame per ~20 ms)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class OutboxFull(Exception):
    pass


class Outbox:
    def __init__(self, *, limit: int) -> None:
        self._frames: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()
        self._limit = limit

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: dict[str, Any]) -> None:
        if len(self._frames) >= self._limit:
            raise OutboxFull
        self._frames.append(frame)
        self._ready.set()

    async def get(self) -> dict[str, Any]:
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def take_deltas_after(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Merge the deltas queued right behind ``frame`` (same conversation, consecutive seqs)
        into it. The merged frame covers ``first_seq..seq``."""
        merged = frame
        while self._frames:
            following = self._frames[0]
            if not (
                following.get("event") == "message.delta"
                and following.get("conversation") == merged["conversation"]
                and following.get("seq") == merged["seq"] + 1
            ):
                break
            self._frames.popleft()
            payload = dict(merged["payload"])
            payload["text"] += following["payload"]["text"]
            merged = {
                **merged,
                "seq": following["seq"],
                "first_seq": merged.get("first_seq", merged["seq"]),
                "payload": payload,
            }
        return merged
