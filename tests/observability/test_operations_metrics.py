"""The operations metrics beyond turns: skill calls, moderation hits, rate-limit rejections,
background tasks, characters and retention, read from ``/metrics`` with the Prometheus text
parser while they move."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from personae.core.observe import TurnObserver
from personae.observability.metrics import Metrics
from tests.observability.conftest import Scrape, scrape
from tests.transports.security_helpers import deployment


def ask(url: str, text: str, *, model: str = "aria", key: str) -> httpx.Response:
    body = {"model": model, "user": "alice", "messages": [{"role": "user", "content": text}]}
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10)


@pytest.mark.usefixtures("one_rate_window")
def test_skills_moderation_rate_limits_tasks_and_characters_are_counted(tmp_path: Path) -> None:
    limits = {"user": {"requests_per_minute": 4, "tokens_per_minute": None}}
    words = {"block": ["kill switch"], "mask": ["darn"], "flag": ["refund"]}
    with deployment(
        tmp_path, security={"rate_limits": limits}, moderation={"blocked_words": words}
    ) as d:
        before = scrape(d.url)
        assert before.value("personae_background_task_up", task="heartbeat") == 1
        assert before.value("personae_background_task_up", task="session-sweeper") == 1
        assert before.value("personae_background_task_up", task="character-watcher") == 1
        assert before.value("personae_background_task_restarts_total", task="heartbeat") == 0
        listed = d.call("admin", "GET", "/api/characters").json()
        assert before.value("personae_characters_loaded") == len(listed) > 0
        assert before.value("personae_character_files_invalid") == 0
        assert before.types["personae_skill_calls"] == "counter"
        assert before.types["personae_memory_recall_seconds"] == "histogram"

        alice = d.keys["alice"]
        assert ask(d.url, "/roll 2d6", model="bram", key=alice).status_code == 200
        assert ask(d.url, "darn it, I want a refund", key=alice).status_code == 200
        assert ask(d.url, "hit the kill switch", key=alice).status_code == 400
        d.model.enqueue("Darn, darn.")  # masked on the way out
        assert ask(d.url, "hello", key=alice).status_code == 200
        assert ask(d.url, "once too often", key=alice).status_code == 429

        after = scrape(d.url)
        assert after.value("personae_skill_calls_total", skill="dice", outcome="ok") == 1
        hits = {
            (stage, action): after.value(
                "personae_moderation_hits_total", stage=stage, action=action
            )
            for stage in ("input", "output")
            for action in ("block", "mask", "flag")
        }
        assert hits == {
            ("input", "block"): 1,
            ("input", "mask"): 1,
            ("input", "flag"): 1,
            ("output", "block"): 0,
            ("output", "mask"): 2,
            ("output", "flag"): 0,
        }
        assert after.value("personae_rejections_total", reason="rate_limited") == 1


class RecallOnly(TurnObserver):
    """What a memory stage reports: recall timings (no turn)."""


def test_recall_and_retention_hooks_feed_their_metrics() -> None:
    metrics = Metrics()
    metrics.observer.recall_finished(12.5, hits=3)
    metrics.observer.recall_finished(0.4, hits=0)
    metrics.observer.purged("messages", 7)
    metrics.observer.purged("audit", 0)
    body, _ = metrics.exposition()
    parsed = Scrape.parse(body.decode())
    assert parsed.value("personae_memory_recall_seconds_count") == 2
    assert parsed.value("personae_memory_recall_seconds_bucket", le="0.001") == 1
    assert parsed.value("personae_memory_recall_seconds_sum") == pytest.approx(0.0129)
    assert parsed.value("personae_retention_purged_total", kind="messages") == 7
    assert parsed.value("personae_retention_purged_total", kind="audit") == 0
    assert ("personae_retention_purged_total", frozenset({("kind", "audit")})) in parsed.samples
    RecallOnly().recall_finished(1.0, hits=1)  # the port's default does nothing
