"""What a backend's failure means for the rest of the turn, decided before anything reaches
the user. The table in docs/routing.md is this module in prose."""

from __future__ import annotations

import enum

from personae.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
    PersonaeError,
)


class Verdict(enum.Enum):
    RETRY = "retry"  # transient: the next backend at once; this one again after a backoff
    FAILOVER = "failover"  # this backend cannot serve it: the next backend, not this one again
    FATAL = "fatal"  # the request itself is wrong: no backend would do better

    @property
    def counts_against_backend(self) -> bool:
        """Whether the failure is evidence that the backend is unhealthy (circuit breaker)."""
        return self is not Verdict.FATAL


# 408 Request Timeout, 409 Conflict, 425 Too Early and 429 Too Many Requests are the 4xx
# answers that say "not now" rather than "not this".
_TRANSIENT_4XX = frozenset({408, 409, 425, 429})
# The request is malformed or too big for the model: every backend would refuse it too.
_REQUEST_4XX = frozenset({400, 413, 422})
_OVERFLOW_WORDS = ("context_length_exceeded", "context length", "context window")


def classify(exc: PersonaeError) -> Verdict:
    if isinstance(exc, InvalidInput):  # ContextOverflow and friends
        return Verdict.FATAL
    if not isinstance(exc, BackendError):
        return Verdict.FATAL
    status = exc.context.get("status")
    if isinstance(status, int):
        if status in _TRANSIENT_4XX or status >= 500:
            return Verdict.RETRY
        if status in _REQUEST_4XX:
            return Verdict.FATAL
        return Verdict.FAILOVER  # 401/403/404: this backend's key or model name is wrong
    if exc.context.get("reason") == "context_overflow" or _mentions_overflow(exc):
        return Verdict.FATAL
    if isinstance(exc, BackendTimeout | BackendUnavailable):
        return Verdict.RETRY
    if isinstance(exc, BackendProtocolError):
        # Malformed JSON, a broken event stream, an empty completion: this backend is
        # misbehaving; another may not be, and asking it again is unlikely to help.
        return Verdict.FAILOVER
    return Verdict.RETRY


def _mentions_overflow(exc: BackendError) -> bool:
    text = str(exc).lower()
    return isinstance(exc, BackendProtocolError) and any(w in text for w in _OVERFLOW_WORDS)
