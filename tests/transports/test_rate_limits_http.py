"""Rate limits over HTTP: 429 with Retry-After, per key, per end user, and tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.transports.security_helpers import deployment

pytestmark = pytest.mark.usefixtures("one_rate_window")


def test_requests_per_minute_give_429_with_retry_after(tmp_path: Path) -> None:
    limits = {"user": {"requests_per_minute": 2, "tokens_per_minute": None}}
    with deployment(tmp_path, security={"rate_limits": limits}) as d:
        assert [d.chat("alice").status_code for _ in range(2)] == [200, 200]
        refused = d.chat("alice")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["type"] == "rate_limit_error"
        assert d.call("alice", "GET", "/v1/models").status_code == 429  # every route counts
        assert d.chat("bob").status_code == 200  # bob has his own budget
        assert d.chat("admin", "alice").status_code == 200  # admins are not limited
        # Nothing of the refused turns was stored.
        exported = d.call("admin", "GET", "/api/users/alice/export").json()
        # A greeting and three turns (two by alice, one by the admin for her); nothing else.
        assert sum(len(c["messages"]) for c in exported["conversations"]) == 7


def test_a_service_is_limited_per_end_user(tmp_path: Path) -> None:
    limits = {
        "user": {"requests_per_minute": 1, "tokens_per_minute": None},
        "service": {"requests_per_minute": 100, "tokens_per_minute": None},
    }
    with deployment(tmp_path, security={"rate_limits": limits}) as d:
        assert d.chat("acme-bot", "carol").status_code == 200
        assert d.chat("acme-bot", "carol").status_code == 429  # carol's own budget
        assert d.chat("acme-bot", "dan").status_code == 200


def test_tokens_per_minute(tmp_path: Path) -> None:
    limits = {"user": {"requests_per_minute": None, "tokens_per_minute": 50}}
    with deployment(tmp_path, security={"rate_limits": limits}) as d:
        first = d.chat("alice")
        assert first.status_code == 200
        assert first.json()["usage"]["total_tokens"] > 50  # one turn spends the minute's budget
        refused = d.chat("alice")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
