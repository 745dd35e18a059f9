"""A fake Discord on loopback: the REST routes discord.py uses for a bot (``/api/v10/...``) and
a gateway WebSocket that says HELLO, answers IDENTIFY with READY, acknowledges heartbeats and
dispatches the MESSAGE_CREATE events a test queues. Tests point discord.py at it by setting
``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` (the library has no base-URL option)."""

from __future__ import annotations

import asyncio
import itertools
import json
import queue
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from starlette.websockets import WebSocketDisconnect

BOT = {
    "id": "999",
    "username": "personae",
    "discriminator": "0",
    "avatar": None,
    "global_name": None,
    "bot": True,
}
SAM = {"id": "42", "username": "sam", "discriminator": "0", "avatar": None, "global_name": "Sam"}


class FakeDiscord:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []  # posted and edited messages, in order
        self.calls: list[str] = []
        self.faults: deque[tuple[str, int, float]] = deque()  # (method, status, retry_after)
        self.events: queue.Queue[dict[str, Any] | str] = queue.Queue()  # "close": drop socket
        self.connections = 0
        self._ids = itertools.count(5000)
        self._messages = itertools.count(100)
        self._lock = threading.Lock()
        self.app = FastAPI()
        base = "/api/v10"
        self.app.add_api_route(f"{base}/users/@me", self.me, methods=["GET"])
        self.app.add_api_route(f"{base}/oauth2/applications/@me", self.application, methods=["GET"])
        self.app.add_api_route(f"{base}/channels/{{channel}}/messages", self.post, methods=["POST"])
        self.app.add_api_route(
            f"{base}/channels/{{channel}}/messages/{{message}}", self.patch, methods=["PATCH"]
        )
        self.app.add_api_route(f"{base}/channels/{{channel}}/typing", self.typing, methods=["POST"])
        self.app.add_api_websocket_route("/gw", self.gateway)

    # --- what tests do ------------------------------------------------------------------------

    def user_writes(
        self,
        text: str,
        *,
        channel: str = "700",
        guild: str | None = None,
        mentions: list[dict[str, Any]] | None = None,
        reply_to: dict[str, Any] | None = None,
        author: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(next(self._messages)),
            "channel_id": channel,
            "author": author or SAM,
            "content": text,
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentions or [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 19 if reply_to else 0,
        }
        if guild is not None:
            data["guild_id"] = guild
        if reply_to is not None:
            data["message_reference"] = {"message_id": reply_to["id"], "channel_id": channel}
            data["referenced_message"] = reply_to
        self.events.put({"t": "MESSAGE_CREATE", "d": data})
        return data

    def texts_in(self, channel: str) -> list[str]:
        shown: dict[str, str] = {}
        for message in self.sent:
            if message["channel_id"] == channel:
                shown[message["id"]] = message["content"]
        return list(shown.values())

    # --- REST ---------------------------------------------------------------------------------

    def _fault(self, method: str) -> Response | None:
        with self._lock:
            self.calls.append(method)
            fault = next((f for f in self.faults if f[0] == method), None)
            if fault is None:
                return None
            self.faults.remove(fault)
        body = {"message": "You are being rate limited.", "retry_after": fault[2], "global": False}
        # Discord's own 429s come through its proxy ("Via"); discord.py reads one without it as
        # a Cloudflare ban and does not retry.
        headers = {"Retry-After": str(fault[2]), "Via": "1.1 google"} if fault[1] == 429 else {}
        return JSONResponse(body, status_code=fault[1], headers=headers)

    async def me(self) -> JSONResponse:
        return JSONResponse(BOT)

    async def application(self) -> JSONResponse:
        return JSONResponse(
            {
                "id": "999",
                "name": "personae",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "k",
                "owner": SAM,
                "flags": 0,
            }
        )

    async def post(self, channel: str, request: Request) -> Response:
        fault = self._fault("post")
        if fault is not None:
            return fault
        payload = await request.json()
        if len(payload["content"]) > 2000:
            return JSONResponse({"message": "Invalid Form Body", "code": 50035}, status_code=400)
        message = self._message(str(next(self._ids)), channel, payload["content"])
        self.sent.append(
            {**message, "method": "post", "reference": payload.get("message_reference")}
        )
        return JSONResponse(message)

    async def patch(self, channel: str, message: str, request: Request) -> Response:
        fault = self._fault("patch")
        if fault is not None:
            return fault
        if not any(m["id"] == message for m in self.sent):
            return JSONResponse({"message": "Unknown Message", "code": 10008}, status_code=404)
        payload = await request.json()
        edited = self._message(message, channel, payload["content"])
        self.sent.append({**edited, "method": "patch"})
        return JSONResponse(edited)

    async def typing(self, channel: str) -> Response:
        self._fault("typing")
        return Response(status_code=204)

    @staticmethod
    def _message(message_id: str, channel: str, content: str) -> dict[str, Any]:
        return {
            "id": message_id,
            "channel_id": channel,
            "author": BOT,
            "content": content,
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
        }

    # --- the gateway --------------------------------------------------------------------------

    async def gateway(self, ws: WebSocket) -> None:
        await ws.accept()
        self.connections += 1
        seq = itertools.count(1)
        await ws.send_text(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        try:
            while True:
                try:
                    event = self.events.get_nowait()
                except queue.Empty:
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.receive_text(), 0.02))
                    except TimeoutError:
                        continue
                    if frame["op"] == 2:  # IDENTIFY
                        ready = {
                            "v": 10,
                            "user": BOT,
                            "guilds": [],
                            "session_id": "s1",
                            "resume_gateway_url": "ws://127.0.0.1:1/gw",
                            "application": {"id": "999", "flags": 0},
                        }
                        await ws.send_text(
                            json.dumps({"op": 0, "t": "READY", "s": next(seq), "d": ready})
                        )
                    elif frame["op"] == 1:  # heartbeat
                        await ws.send_text(json.dumps({"op": 11}))
                    continue
                if event == "close":
                    await ws.close(code=4000)
                    return
                assert isinstance(event, dict)
                await ws.send_text(json.dumps({"op": 0, "s": next(seq), **event}))
        except WebSocketDisconnect:
            return
