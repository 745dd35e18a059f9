"""A webhook receiver on loopback that records what it is sent and fails when told to: the
far side of the webhook channel."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import deque
from typing import Any

from fastapi import FastAPI, Request, Response


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self.faults: deque[int] = deque()  # statuses to answer with next, in order
        self.down = False  # answer 503 to everything
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.add_api_route("/hook", self.hook, methods=["POST"])

    def texts(self) -> list[str]:
        return [r["text"] for r in self.received]

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.attempts += 1
            if self.down:
                return Response(status_code=503)
            if self.faults:
                status = self.faults.popleft()
                headers = {"Retry-After": "0.3"} if status == 429 else {}
                return Response(status_code=status, headers=headers)
            stamp = request.headers["x-personae-timestamp"]
            expected = hmac.new(
                self.secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256
            ).hexdigest()
            if request.headers["x-personae-signature"] != f"sha256={expected}":
                self.bad_signatures += 1
                return Response(status_code=401)
            self.received.append(json.loads(body))
        return Response(status_code=204)
