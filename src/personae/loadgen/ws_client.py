"""Turns over Personae's WebSocket protocol (docs/protocol.md), one connection per user, opened
on the user's first turn and kept: ``connect``, then ``message.send`` and the events up to
``message.done`` or ``error``.

Raw ``websockets`` rather than ``personae.client``: the adapters do not import each other, and
a load generator wants the frames as they arrive, without reconnects or resends of its own.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from personae.loadgen.outcome import TurnOutcome


class WsTurns:
    def __init__(self, base_url: str, *, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = "ws" + self.base_url.removeprefix("http") + "/ws"
        self.api_key = api_key
        self.sockets: dict[str, ClientConnection] = {}
        self._ids = itertools.count()

    async def characters(self) -> list[str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers) as client:
            response = await client.get("/v1/models", timeout=30)
            response.raise_for_status()
            return [str(model["id"]) for model in response.json()["data"]]

    async def _socket(self, user: str) -> ClientConnection:
        socket = self.sockets.get(user)
        if socket is not None:
            return socket
        socket = await connect(self.ws_url, ping_interval=None, max_size=None, close_timeout=1)
        try:
            params: dict[str, Any] = {"protocol": {"min": 1, "max": 1}, "user": user}
            if self.api_key:
                params["token"] = self.api_key
            answer = await self._request(socket, "connect", params)
            if not answer.get("ok"):
                raise ConnectRefused(answer.get("error", {}).get("code", "refused"))
        except BaseException:
            await socket.close()
            raise
        self.sockets[user] = socket
        return socket

    async def _request(
        self, socket: ClientConnection, method: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        request_id = f"r{next(self._ids)}"
        await socket.send(_frame(request_id, method, params))
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == "res" and frame.get("id") == request_id:
                return dict(frame)

    async def turn(self, user: str, character: str, text: str) -> TurnOutcome:
        outcome = TurnOutcome(sent_ns=time.time_ns())
        try:
            socket = await self._socket(user)
            outcome.sent_ns = time.time_ns()  # a first turn's handshake is not the turn's
            await self._turn(socket, character, text, outcome)
        except ConnectRefused as exc:
            outcome.error = f"connect_{exc}"
        except (OSError, InvalidHandshake):
            outcome.error = "connect_failed"
        except ConnectionClosed as exc:
            outcome.error = f"ws_closed_{exc.rcvd.code if exc.rcvd else 'abnormal'}"
            self.sockets.pop(user, None)
        except (ValueError, KeyError, TypeError):
            outcome.error = "bad_response"
        return outcome

    async def _turn(
        self, socket: ClientConnection, character: str, text: str, outcome: TurnOutcome
    ) -> None:
        request_id = f"s{next(self._ids)}"
        params = {"character": character, "text": text}
        await socket.send(_frame(request_id, "message.send", params))
        pieces: list[str] = []
        while True:
            frame = json.loads(await socket.recv())
            kind = frame.get("type")
            if kind == "res" and frame.get("id") == request_id and not frame.get("ok"):
                outcome.error = str(frame.get("error", {}).get("code", "refused"))
                return
            if kind != "event" or "conversation" not in frame:
                continue  # our answer, or a heartbeat
            event, payload = frame["event"], frame["payload"]
            if event == "message.delta":
                if outcome.first_content_ns is None:
                    outcome.first_content_ns = time.time_ns()
                outcome.deltas += 1
                pieces.append(payload["text"])
            elif event == "message.done":
                outcome.done_ns = time.time_ns()
                outcome.text = payload.get("message", {}).get("content") or "".join(pieces)
                return
            elif event == "error":
                outcome.error = str(payload.get("code", "error"))
                return

    async def forget(self, user: str) -> None:
        socket = self.sockets.pop(user, None)
        if socket is not None:
            socket.transport.abort()

    async def aclose(self) -> None:
        sockets, self.sockets = list(self.sockets.values()), {}
        for socket in sockets:
            socket.transport.abort()


class ConnectRefused(Exception):
    pass


def _frame(request_id: str, method: str, params: dict[str, Any]) -> str:
    return json.dumps(
        {"type": "req", "id": request_id, "method": method, "params": params},
        separators=(",", ":"),
    )
