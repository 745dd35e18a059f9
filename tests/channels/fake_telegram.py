"""A fake Telegram Bot API on loopback, speaking the real API's shape (``/bot<token>/<method>``,
``{"ok": ..., "result": ...}``, 429 with ``parameters.retry_after``): the far side of the
Telegram channel. Tests queue updates, read what the bot sent, and inject faults."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

BOT = {"id": 999, "is_bot": True, "first_name": "Personae", "username": "personae_bot"}
TOKEN = "123456:TEST-token"


class FakeTelegram:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.updates: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []  # every request, faults included
        self.sent: list[dict[str, Any]] = []  # sendMessage and editMessageText that succeeded
        self.faults: deque[tuple[str, int, float]] = deque()  # (method or "*", status, retry)
        self.down = False  # every method answers 502, as a proxy in front of a dead API does
        self.webhook: dict[str, Any] | None = None
        self._ids = itertools.count(100)
        self._update_ids = itertools.count(1)
        self._messages = itertools.count(1)
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.add_api_route("/bot{token}/{method}", self.handle, methods=["GET", "POST"])

    # --- what tests do ------------------------------------------------------------------------

    def user_writes(
        self,
        text: str,
        *,
        user: int = 42,
        chat: int | None = None,
        group: bool = False,
        reply_to_bot: int | None = None,
    ) -> dict[str, Any]:
        """Queue an update: user ``user`` wrote ``text`` (in a private chat unless ``group``)."""
        chat_id = chat if chat is not None else (-1000 - user if group else user)
        message: dict[str, Any] = {
            "message_id": next(self._messages),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "group" if group else "private", "title": "g"}
            if group
            else {"id": chat_id, "type": "private", "first_name": "Sam"},
            "from": {"id": user, "is_bot": False, "first_name": "Sam"},
            "text": text,
        }
        if reply_to_bot is not None:
            message["reply_to_message"] = {
                "message_id": reply_to_bot,
                "date": int(time.time()),
                "chat": message["chat"],
                "from": BOT,
                "text": "earlier",
            }
        return self.push({"message": message})

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            update = {"update_id": next(self._update_ids), **update}
            self.updates.append(update)
        return update

    def texts_to(self, chat: int) -> list[str]:
        """The chat's messages as the user sees them now: edits replace the text."""
        shown: dict[int, str] = {}
        for call in self.sent:
            if int(call["chat_id"]) == chat:
                shown[call["message_id"]] = call["text"]
        return list(shown.values())

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    # --- the API ------------------------------------------------------------------------------

    async def handle(self, token: str, method: str, request: Request) -> JSONResponse:
        params = await _params(request)
        with self._lock:
            self.calls.append((method, params))
            if token != self.token:
                return _error(401, "Unauthorized")
            if self.down:
                return _error(502, "Bad Gateway")
            fault = next((f for f in self.faults if f[0] in (method, "*")), None)
            if fault is not None:
                self.faults.remove(fault)
                return _error(
                    fault[1],
                    "Too Many Requests" if fault[1] == 429 else "Internal",
                    retry_after=fault[2],
                )
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        result = await handler(params)
        if isinstance(result, JSONResponse):
            return result
        return JSONResponse({"ok": True, "result": result})

    async def _getMe(self, params: dict[str, Any]) -> Any:  # noqa: N802 (the API's names)
        return BOT

    async def _deleteWebhook(self, params: dict[str, Any]) -> Any:  # noqa: N802
        self.webhook = None
        return True

    async def _setWebhook(self, params: dict[str, Any]) -> Any:  # noqa: N802
        self.webhook = params
        return True

    async def _getUpdates(self, params: dict[str, Any]) -> Any:  # noqa: N802
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 0.3)
        while True:
            with self._lock:
                # As Telegram does: an offset confirms (forgets) every earlier update.
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
                found = list(self.updates)
            if found or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.02)

    async def _sendMessage(self, params: dict[str, Any]) -> Any:  # noqa: N802
        text = str(params["text"])
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        message_id = next(self._ids)
        self.sent.append(
            {
                "chat_id": params["chat_id"],
                "message_id": message_id,
                "text": text,
                "method": "sendMessage",
                "reply": params.get("reply_parameters"),
            }
        )
        return _message(message_id, params["chat_id"], text)

    async def _editMessageText(self, params: dict[str, Any]) -> Any:  # noqa: N802
        message_id = int(params["message_id"])
        known = [s for s in self.sent if s["message_id"] == message_id]
        if not known:
            return _error(400, "Bad Request: message to edit not found")
        if known[-1]["text"] == params["text"]:
            return _error(400, "Bad Request: message is not modified")
        self.sent.append(
            {
                "chat_id": params["chat_id"],
                "message_id": message_id,
                "text": str(params["text"]),
                "method": "editMessageText",
            }
        )
        return _message(message_id, params["chat_id"], str(params["text"]))

    async def _sendChatAction(self, params: dict[str, Any]) -> Any:  # noqa: N802
        return True


async def _params(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.body()
        return dict(json.loads(body)) if body else {}
    form = await request.form()
    values: dict[str, Any] = {}
    for key, value in form.items():
        text = str(value)
        try:
            values[key] = json.loads(text) if text[:1] in "[{" else text
        except ValueError:
            values[key] = text
    return values


def _message(message_id: int, chat_id: Any, text: str) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "date": int(time.time()),
        "from": BOT,
        "chat": {"id": int(chat_id), "type": "private"},
        "text": text,
    }


def _error(status: int, description: str, retry_after: float = 0) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if status == 429:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=status)
