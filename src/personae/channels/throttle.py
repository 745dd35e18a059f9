"""Edit throttling: a streamed reply is edited at most once per interval, the platform's
limit (Telegram allows about one edit per second per chat), and not at all while the
platform has asked us to wait."""

from __future__ import annotations

import time
from collections.abc import Callable


class EditThrottle:
    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._not_before = float("-inf")

    def ready(self) -> bool:
        return self._clock() >= self._not_before

    def sent(self) -> None:
        """An edit (or the first send) went out now: the next waits a full interval."""
        self._not_before = self._clock() + self.interval_s

    def back_off(self, retry_after_s: float) -> None:
        """The platform said 429: nothing before ``retry_after_s`` (nor a full interval)."""
        self._not_before = self._clock() + max(retry_after_s, self.interval_s)
