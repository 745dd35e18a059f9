"""A fake Slack on loopback: the Web API's shape (``/api/<method>``, ``{"ok": ...}``, errors
as ``ok: false`` with HTTP 200, 429 with ``Retry-After``) and a Socket Mode WebSocket that
sends ``hello``, pushes event envelopes and collects their acknowledgements."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import queue
import threading
import time
from collections import deque
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from tests.channels.fake_telegram import _params

BOT_USER = "UBOT"
SIGNING_SECRET = "slack-signing-secret"


def sign(body: bytes, *, secret: str = SIGNING_SECRET, at: float | None = None) -> dict[str, str]:
    """The headers Slack sends with an Events API request."""
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
        "Content-Type": "application/json",
    }


def message_event(
    text: str, *, user: str = "U1", channel: str = "D1", channel_type: str = "im", ts: str = ""
) -> dict[str, Any]:
    """An ``event_callback`` body holding a ``message`` event."""
    ts = ts or f"{time.time():.6f}"
    return {
        "token": "legacy",
        "team_id": "T1",
        "api_app_id": "A1",
        "type": "event_callback",
        "event_id": f"Ev{ts.replace('.', '')}",
        "event_time": int(float(ts)),
        "event": {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "channel": channel,
            "channel_type": channel_type,
        },
    }


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sent: list[dict[str, Any]] = []  # successful postMessage / update, in order
        self.faults: deque[tuple[str, int, float]] = deque()
        self.envelopes: queue.Queue[dict[str, Any] | str] = queue.Queue()  # "close": drop it
        self.acks: list[str] = []
        self.sockets = 0
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.add_api_route("/api/{method}", self.handle, methods=["POST", "GET"])
        self.app.add_api_websocket_route("/socket", self.socket)

    def texts_in(self, channel: str) -> list[str]:
        shown: dict[str, str] = {}
        for call in self.sent:
            if call["channel"] == channel:
                shown[call["ts"]] = call["text"]
        return list(shown.values())

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    def push_event(self, body: dict[str, Any]) -> None:
        self.envelopes.put(
            {
                "envelope_id": f"env-{body['event_id']}",
                "type": "events_api",
                "payload": body,
                "accepts_response_payload": False,
            }
        )

    async def handle(self, method: str, request: Request) -> JSONResponse:
        params = await _params(request)
        with self._lock:
            self.calls.append((method, params))
            fault = next((f for f in self.faults if f[0] == method), None)
            if fault is not None:
                self.faults.remove(fault)
                headers = {"Retry-After": str(int(fault[2]))} if fault[1] == 429 else {}
                return JSONResponse(
                    {"ok": False, "error": "ratelimited" if fault[1] == 429 else "fatal_error"},
                    status_code=fault[1],
                    headers=headers,
                )
        if method == "auth.test":
            return _ok({"user_id": BOT_USER, "bot_id": "BBOT", "team_id": "T1", "user": "bot"})
        if method == "apps.connections.open":
            base = str(request.base_url).replace("http", "ws", 1)
            return _ok({"url": f"{base}socket"})
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            self.sent.append(
                {"channel": params["channel"], "ts": ts, "text": params["text"], "method": method}
            )
            return _ok(
                {"channel": params["channel"], "ts": ts, "message": {"text": params["text"]}}
            )
        if method == "chat.update":
            if not any(s["ts"] == params["ts"] for s in self.sent):
                return _ok({"ok": False, "error": "message_not_found"})
            self.sent.append(
                {
                    "channel": params["channel"],
                    "ts": params["ts"],
                    "text": params["text"],
                    "method": method,
                }
            )
            return _ok({"channel": params["channel"], "ts": params["ts"]})
        return _ok({"ok": False, "error": "unknown_method"})

    async def socket(self, ws: WebSocket) -> None:
        await ws.accept()
        self.sockets += 1
        await ws.send_text(json.dumps({"type": "hello", "num_connections": 1}))
        try:
            while True:
                try:
                    envelope = self.envelopes.get_nowait()
                except queue.Empty:
                    try:
                        ack = await asyncio.wait_for(ws.receive_text(), timeout=0.02)
                        self.acks.append(json.loads(ack)["envelope_id"])
                    except TimeoutError:
                        pass
                    continue
                if envelope == "close":
                    await ws.close()
                    return
                await ws.send_text(json.dumps(envelope))
        except WebSocketDisconnect:
            return


def _ok(result: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"ok": True, **result})
