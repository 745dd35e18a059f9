"""What a platform's API can answer besides success, as the delivery layer needs to know it:
wait and retry, retry later, or give up."""

from __future__ import annotations

from typing import Any

from personae.errors import PersonaeError


class PlatformError(PersonaeError):
    """A chat platform failed a request; ``platform`` names the channel."""

    code = "platform_error"


class PlatformUnavailable(PlatformError):
    """Down, 5xx, disconnected or timed out: the same request may succeed later."""

    code = "platform_unavailable"
    retryable = True


class PlatformRateLimited(PlatformUnavailable):
    """The platform said 429: wait ``retry_after`` seconds before the next request."""

    code = "platform_rate_limited"

    def __init__(self, message: str, *, retry_after: float, **context: Any) -> None:
        super().__init__(message, retry_after=retry_after, **context)
        self.retry_after = retry_after


class PlatformRejected(PlatformError):
    """The platform refused the request itself (4xx): repeating it will not help."""

    code = "platform_rejected"


class MessageGone(PlatformRejected):
    """The message to edit no longer exists (deleted, too old): send a new one instead."""

    code = "platform_message_gone"


class MalformedUpdate(PlatformError):
    """An inbound update we cannot read; it is logged and skipped, never fatal."""

    code = "malformed_update"
