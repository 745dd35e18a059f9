"""HMAC-SHA256 signatures for webhooks, both directions, with a replay window.

A request carries ``X-Personae-Timestamp`` (Unix seconds) and ``X-Personae-Signature:
sha256=<hex HMAC of "<timestamp>." + body>``. It is refused when the signature is wrong, the
timestamp is outside the window, or the same signature was already accepted within it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping

from personae.errors import NotAuthenticated

TIMESTAMP_HEADER = "x-personae-timestamp"
SIGNATURE_HEADER = "x-personae-signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "X-Personae-Timestamp": str(timestamp),
        "X-Personae-Signature": signature(secret, timestamp, body),
    }


class SignatureCheck:
    def __init__(
        self, secret: str, *, window_s: float = 300.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[str, float] = {}  # accepted signatures, until they leave the window

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raises ``NotAuthenticated`` saying which check failed (never the secret)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        stamp, given = lowered.get(TIMESTAMP_HEADER), lowered.get(SIGNATURE_HEADER)
        if not stamp or not given:
            raise NotAuthenticated("the request is not signed")
        try:
            timestamp = int(stamp)
        except ValueError:
            raise NotAuthenticated("the signature timestamp is not a number") from None
        now = self._clock()
        if abs(now - timestamp) > self.window_s:
            raise NotAuthenticated("the signature timestamp is outside the replay window")
        if not hmac.compare_digest(given.strip(), signature(self._secret, timestamp, body)):
            raise NotAuthenticated("the signature does not match")
        self._forget_before(now - self.window_s)
        if given in self._seen:
            raise NotAuthenticated("this request was already received (replay)")
        self._seen[given] = timestamp

    def _forget_before(self, oldest: float) -> None:
        for key in [k for k, stamp in self._seen.items() if stamp < oldest]:
            del self._seen[key]
