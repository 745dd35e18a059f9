"""A bare test client for the WebSocket protocol, on the real ``websockets`` library: it speaks
frames, so tests can assert on exactly what crosses the wire."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class WsClient:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []  # events read while waiting for answers

    @classmethod
    async def open(cls, base_url: str, **connect_params: Any) -> tuple[WsClient, dict[str, Any]]:
        socket = await connect(base_url.replace("http", "ws", 1) + "/ws", max_size=None)
        client = cls(socket)
        hello = await client.request(
            "connect", {"protocol": {"min": 1, "max": 1}, **connect_params}
        )
        return client, hello

    async def send_raw(self, data: str | bytes) -> None:
        await self.socket.send(data)

    async def request_frame(self, method: str, params: dict[str, Any] | None = None) -> str:
        request_id = f"r{next(self._ids)}"
        await self.socket.send(
            json.dumps({"type": "req", "id": request_id, "method": method, "params": params or {}})
        )
        return request_id

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and return its answer (``res``); events read meanwhile are kept."""
        request_id = await self.request_frame(method, params)
        return await self.answer(request_id)

    async def answer(self, request_id: str) -> dict[str, Any]:
        while True:
            frame = await self.next_frame()
            if frame["type"] == "res" and frame["id"] == request_id:
                return frame
            self.events.append(frame)

    async def next_frame(self, wait_s: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(wait_s):
            return dict(json.loads(await self.socket.recv()))

    async def events_until(
        self, *names: str, conversation: str | None = None, wait_s: float = 10
    ) -> list[dict[str, Any]]:
        """Conversation events (already read ones first) up to and including one named."""
        collected: list[dict[str, Any]] = []
        pending, self.events = self.events, []
        while True:
            frame = pending.pop(0) if pending else await self.next_frame(wait_s)
            if frame["type"] != "event" or "seq" not in frame:
                continue
            if conversation and frame["conversation"] != conversation:
                continue
            collected.append(frame)
            if frame["event"] in names:
                self.events = pending
                return collected

    async def close(self) -> None:
        await self.socket.close()


def seqs_covered(frames: list[dict[str, Any]]) -> list[int]:
    """Every seq the frames account for: a coalesced delta covers first_seq..seq."""
    covered: list[int] = []
    for frame in frames:
        covered.extend(range(frame.get("first_seq", frame["seq"]), frame["seq"] + 1))
    return covered


def delta_text(frames: list[dict[str, Any]]) -> str:
    return "".join(f["payload"]["text"] for f in frames if f["event"] == "message.delta")
