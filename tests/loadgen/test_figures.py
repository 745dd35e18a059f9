"""Stamps read back from a fake reply, the figures of a turn, percentiles, config checks."""

from __future__ import annotations

import pytest

from personae.fakellm.stamps import arrival_word, token_word
from personae.loadgen.config import BenchConfig
from personae.loadgen.outcome import TurnOutcome, figures
from personae.loadgen.stamps import read_stamps
from personae.loadgen.stats import percentile, summary

MS = 1_000_000


def test_stamps_written_by_the_fake_are_read_back() -> None:
    text = arrival_word(1_000 * MS) + token_word(1_010 * MS) + token_word(1_030 * MS)
    stamps = read_stamps(text.strip())
    assert stamps.arrival_ns == 1_000 * MS
    assert stamps.first_token_ns == 1_010 * MS
    assert stamps.last_token_ns == 1_030 * MS
    assert stamps.tokens == 2
    assert stamps.backend_ms == pytest.approx(30)
    assert stamps.backend_ttft_ms == pytest.approx(10)


def test_a_reply_without_stamps_yields_no_backend_time() -> None:
    stamps = read_stamps("Hello there, traveller. t is a letter, a12b is not a stamp.")
    assert stamps.tokens == 0
    assert stamps.backend_ms is None
    assert stamps.backend_ttft_ms is None


def test_a_turn_s_added_latency_is_end_to_end_minus_the_backend_s_time() -> None:
    # Sent at 0; backend got it at 2 ms, first token at 12, last at 52; client saw the first
    # content at 15 ms and the end at 57 ms.
    text = arrival_word(2 * MS) + token_word(12 * MS) + token_word(32 * MS) + token_word(52 * MS)
    outcome = TurnOutcome(sent_ns=0, first_content_ns=15 * MS, done_ns=57 * MS, deltas=3, text=text)
    turn = figures(outcome)
    assert turn.latency_ms == pytest.approx(57)
    assert turn.backend_ms == pytest.approx(50)
    assert turn.added_ms == pytest.approx(7)
    assert turn.ttft_ms == pytest.approx(15)
    assert turn.added_ttft_ms == pytest.approx(5)
    assert turn.tokens == 3


def test_a_failed_turn_is_not_ok() -> None:
    assert not TurnOutcome(sent_ns=0, error="http_503", done_ns=5).ok
    assert not TurnOutcome(sent_ns=0).ok


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert percentile(values, 50) == 500
    assert percentile(values, 99) == 990
    assert percentile(values, 99.9) == 999
    assert percentile(values, 100) == 1000
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_summaries_are_ordered_and_skip_missing_values() -> None:
    result = summary([5.0, None, 1.0, 3.0, 2.0, 4.0])
    assert result["count"] == 5
    assert result["mean"] == 3.0
    assert result["p50"] == 3.0
    assert result["max"] == 5.0
    empty = summary([None])
    assert empty["count"] == 0
    assert empty["p99"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"url": "127.0.0.1:8000", "rate": 1}, "http"),
        ({}, "exactly one"),
        ({"rate": 1, "users": 2}, "exactly one"),
        ({"rate": -1}, "rate must be"),
        ({"users": 0}, "users must be"),
        ({"rate": 1, "duration_s": 0}, "duration_s must be positive"),
        ({"rate": 1, "think_s": -1}, "must not be negative"),
        ({"rate": 1, "transport": "grpc"}, "transport"),
    ],
)
def test_bad_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"url": "http://127.0.0.1:8000", **overrides}
    with pytest.raises(ValueError, match=message):
        BenchConfig(**settings)  # type: ignore[arg-type]


def test_the_report_never_shows_the_api_key() -> None:
    config = BenchConfig(url="http://x", rate=1, api_key="pk_secret")
    assert "pk_secret" not in str(config.public())
