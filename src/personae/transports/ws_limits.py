"""A WebSocket connection's limits and timings, and its per-connection request bucket."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WsLimits:
    max_frame_bytes: int = 64 * 1024
    heartbeat_interval_s: float = 30.0
    idle_timeout_s: float = 90.0
    send_timeout_s: float = 5.0
    outbox_frames: int = 2048
    coalesce_s: float = 0.02  # delta frames: one per window on average ...
    delta_burst: int = 3  # ... and at most this many back to back
    max_pending_requests: int = 16
    requests_per_s: float = 20.0
    request_burst: int = 40

    def describe(self) -> dict[str, Any]:
        return {
            "max_frame_bytes": self.max_frame_bytes,
            "heartbeat_interval_s": self.heartbeat_interval_s,
            "idle_timeout_s": self.idle_timeout_s,
            "send_timeout_s": self.send_timeout_s,
            "requests_per_s": self.requests_per_s,
        }


class Bucket:
    """So many per second with a burst: a token bucket that lives and dies with the connection
    (a shared limiter keyed per connection would need cleaning up after it). It paces a
    connection's requests, and its delta frames."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> float | None:
        """One now (None), or how long until one is due (nothing taken: a refusal)."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate

    def reserve(self) -> float:
        """One, always: the seconds to wait before using it (0: now). What is reserved is
        spent, so whoever waits longer than told is credited the difference."""
        self._refill()
        self.tokens -= 1
        return max(0.0, -self.tokens / self.rate)

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
