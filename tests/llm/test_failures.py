"""The failure classification table (docs/routing.md), row by row."""

from __future__ import annotations

import pytest

from personae.errors import (
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ContextOverflow,
    PersonaeError,
)
from personae.llm.failures import Verdict, classify


def unavailable(status: int | None = None) -> BackendUnavailable:
    context = {"status": status} if status is not None else {}
    return BackendUnavailable("scripted", backend="b", **context)


def protocol(status: int | None = None, message: str = "scripted") -> BackendProtocolError:
    context = {"status": status} if status is not None else {}
    return BackendProtocolError(message, backend="b", **context)


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        pytest.param(unavailable(429), Verdict.RETRY, id="429"),
        pytest.param(unavailable(500), Verdict.RETRY, id="500"),
        pytest.param(unavailable(503), Verdict.RETRY, id="503"),
        pytest.param(protocol(408), Verdict.RETRY, id="408"),
        pytest.param(unavailable(), Verdict.RETRY, id="connection"),
        pytest.param(BackendTimeout("slow", backend="b"), Verdict.RETRY, id="timeout"),
        pytest.param(BackendError("odd", backend="b"), Verdict.RETRY, id="other-backend-error"),
        pytest.param(protocol(401), Verdict.FAILOVER, id="401"),
        pytest.param(protocol(403), Verdict.FAILOVER, id="403"),
        pytest.param(protocol(404), Verdict.FAILOVER, id="404"),
        pytest.param(protocol(message="unreadable stream event"), Verdict.FAILOVER, id="bad-json"),
        pytest.param(protocol(message="empty reply"), Verdict.FAILOVER, id="empty"),
        pytest.param(protocol(400), Verdict.FATAL, id="400"),
        pytest.param(protocol(413), Verdict.FATAL, id="413"),
        pytest.param(protocol(422), Verdict.FATAL, id="422"),
        pytest.param(
            BackendProtocolError("too long", backend="b", reason="context_overflow"),
            Verdict.FATAL,
            id="llamacpp-overflow",
        ),
        pytest.param(
            protocol(message="Requested tokens (3000) exceed context window of 2048"),
            Verdict.FATAL,
            id="overflow-words",
        ),
        pytest.param(ContextOverflow("does not fit"), Verdict.FATAL, id="context-overflow"),
        pytest.param(PersonaeError("not a backend error"), Verdict.FATAL, id="other"),
    ],
)
def test_classification(error: PersonaeError, verdict: Verdict) -> None:
    assert classify(error) is verdict


def test_only_request_errors_spare_the_breaker() -> None:
    assert Verdict.RETRY.counts_against_backend
    assert Verdict.FAILOVER.counts_against_backend
    assert not Verdict.FATAL.counts_against_backend
