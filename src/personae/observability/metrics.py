"""Prometheus metrics: a registry of our own per runtime, and the observer that feeds it.

    metrics = Metrics(multiprocess_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    service = ChatService(..., observer=metrics.observer)
    metrics.watch(LiveSources(routing=pool, turns=hub, connections=connections))
    body, content_type = metrics.exposition()        # what GET /metrics answers

Turn events (``core.observe``) move counters and histograms as they happen; the live state
(backends, breakers, queues, sessions, connections) is read at scrape time by
``LiveStateCollector``. Nothing is registered in prometheus-client's global default registry,
so several apps in one process (tests) never collide. The list of metrics, with their labels,
is in docs/operations.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from personae.core.observe import TurnObserver, TurnReport
from personae.observability.collectors import GAUGE_MODES, LiveStateCollector
from personae.observability.multiprocess import (
    LiveStatePublisher,
    check_multiprocess_dir,
    forget_dead_workers,
)
from personae.observability.sources import LiveSources

TURN_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
FIRST_TOKEN_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
USER_CHARS = (10, 30, 100, 300, 1000, 3000, 10000)
CONVERSATION_MESSAGES = (2, 5, 10, 20, 50, 100, 200, 500, 1000)
RECALL_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class TurnMetrics:
    """The metrics that turn events move. ``registry=None``: registered nowhere (multiprocess
    mode, where the files are the registry)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        turn = ["character", "backend"]
        self.turns = Counter(
            "personae_turns",
            "Turns by character, backend (route) and outcome.",
            [*turn, "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "personae_turn_duration_seconds",
            "From the start of a turn to its end, any outcome.",
            [*turn, "outcome"],
            buckets=TURN_SECONDS,
            registry=registry,
        )
        self.first_token = Histogram(
            "personae_turn_first_token_seconds",
            "From the start of a turn to its first reply text.",
            turn,
            buckets=FIRST_TOKEN_SECONDS,
            registry=registry,
        )
        self.tokens_in = Counter(
            "personae_tokens_in", "Prompt tokens of complete replies.", turn, registry=registry
        )
        self.tokens_out = Counter(
            "personae_tokens_out", "Reply tokens of complete replies.", turn, registry=registry
        )
        self.rejections = Counter(
            "personae_rejections",
            "Messages and requests refused before a turn started, by reason (overloaded, "
            "busy, shutting_down, rate_limited, too_many_pending).",
            ["reason"],
            registry=registry,
        )
        self.skill_calls = Counter(
            "personae_skill_calls",
            "Skills run in turns (slash commands and triggers), by skill and outcome (ok, error).",
            ["skill", "outcome"],
            registry=registry,
        )
        self.moderation_hits = Counter(
            "personae_moderation_hits",
            "Blocked-word matches, by stage (input, output) and action (block, mask, flag).",
            ["stage", "action"],
            registry=registry,
        )
        self.recall = Histogram(
            "personae_memory_recall_seconds",
            "Memory recall for a turn, from the query to the items found.",
            buckets=RECALL_SECONDS,
            registry=registry,
        )
        # Experiments (docs/experiments.md): only turns a variant ran, labelled by it.
        variant = ["experiment", "variant"]
        self.experiment_turns = Counter(
            "personae_experiment_turns",
            "Turns an experiment's variants ran, by outcome (errors: failed, error, incomplete).",
            [*variant, "outcome"],
            registry=registry,
        )
        self.experiment_duration = Histogram(
            "personae_experiment_turn_duration_seconds",
            "Turn latency by experiment variant, any outcome.",
            variant,
            buckets=TURN_SECONDS,
            registry=registry,
        )
        self.experiment_tokens = Counter(
            "personae_experiment_tokens",
            "Prompt and reply tokens of complete replies, by experiment variant.",
            variant,
            registry=registry,
        )
        self.experiment_user_chars = Histogram(
            "personae_experiment_user_message_chars",
            "The user message's length in characters, by experiment variant.",
            variant,
            buckets=USER_CHARS,
            registry=registry,
        )
        self.experiment_conversation = Histogram(
            "personae_experiment_conversation_messages",
            "Messages in the conversation when a turn opened, by experiment variant.",
            variant,
            buckets=CONVERSATION_MESSAGES,
            registry=registry,
        )
        self.experiment_feedback = Counter(
            "personae_experiment_feedback",
            "Thumbs up/down on replies, by experiment variant and value (up, down).",
            [*variant, "value"],
            registry=registry,
        )
        self.retention_purged = Counter(
            "personae_retention_purged",
            "Records purged by retention, by kind (messages, memories, audit).",
            ["kind"],
            registry=registry,
        )


class MetricsObserver(TurnObserver):
    """Turn events into metric updates. Label children are looked up once per label set."""

    def __init__(self, metrics: TurnMetrics) -> None:
        self.metrics = metrics
        self._by_turn: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._by_route: dict[tuple[str, str], tuple[Histogram, Counter, Counter]] = {}
        self._by_reason: dict[str, Counter] = {}

    def turn_finished(self, report: TurnReport) -> None:
        character, backend, ttft_ms = report.character, report.backend, report.ttft_ms
        tokens_in, tokens_out = report.tokens_in, report.tokens_out
        key = (character, backend, report.outcome.value)
        children = self._by_turn.get(key)
        if children is None:
            m = self.metrics
            children = self._by_turn[key] = (m.turns.labels(*key), m.duration.labels(*key))
        turns, duration = children
        turns.inc()
        duration.observe(report.latency_ms / 1000)
        if report.experiment is not None and report.variant is not None:
            self._experiment_turn(report.experiment, report.variant, report)
        if ttft_ms is None and not tokens_in and not tokens_out:
            return
        route = (character, backend)
        per_route = self._by_route.get(route)
        if per_route is None:
            m = self.metrics
            per_route = self._by_route[route] = (
                m.first_token.labels(*route),
                m.tokens_in.labels(*route),
                m.tokens_out.labels(*route),
            )
        first_token, sent, received = per_route
        if ttft_ms is not None:
            first_token.observe(ttft_ms / 1000)
        if tokens_in:
            sent.inc(tokens_in)
        if tokens_out:
            received.inc(tokens_out)

    def _experiment_turn(self, experiment: str, variant: str, report: TurnReport) -> None:
        m, labels = self.metrics, (experiment, variant)
        m.experiment_turns.labels(*labels, report.outcome.value).inc()
        m.experiment_duration.labels(*labels).observe(report.latency_ms / 1000)
        if report.tokens_in or report.tokens_out:
            m.experiment_tokens.labels(*labels).inc(report.tokens_in + report.tokens_out)
        m.experiment_user_chars.labels(*labels).observe(report.user_chars)
        m.experiment_conversation.labels(*labels).observe(report.conversation_messages)

    def feedback_given(self, experiment: str, variant: str, value: int) -> None:
        label = "up" if value > 0 else "down"
        self.metrics.experiment_feedback.labels(experiment, variant, label).inc()

    def request_rejected(self, reason: str) -> None:
        child = self._by_reason.get(reason)
        if child is None:
            child = self._by_reason[reason] = self.metrics.rejections.labels(reason)
        child.inc()

    def skill_called(self, skill: str, *, ok: bool) -> None:
        self.metrics.skill_calls.labels(skill, "ok" if ok else "error").inc()

    def moderation_hit(self, stage: str, action: str, count: int) -> None:
        self.metrics.moderation_hits.labels(stage, action).inc(count)

    def recall_finished(self, latency_ms: float, *, hits: int) -> None:
        self.metrics.recall.observe(latency_ms / 1000)

    def purged(self, kind: str, count: int) -> None:
        """Retention purged ``count`` records of ``kind`` (``RetentionJob(on_purged=...)``)."""
        self.metrics.retention_purged.labels(kind).inc(count)


class _Frozen(Collector):
    """The live state as read at the start of a scrape, so that the rest of the scrape (most
    of its cost) can run off the event loop without touching the server's objects."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class Metrics:
    """The registry ``/metrics`` serves, built once per runtime."""

    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        # No ``*_created`` series: they would double the series of every counter and
        # histogram, and Prometheus spots counter resets without them. (A process-wide
        # switch of prometheus-client's.)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self._folder: Path | None = None
        self._publisher: LiveStatePublisher | None = None
        self._live: LiveStateCollector | None = None
        self._frozen = _Frozen()
        if multiprocess_dir:
            self._folder = check_multiprocess_dir(multiprocess_dir)
            MultiProcessCollector(self.registry, path=str(self._folder))  # type: ignore[no-untyped-call]
            forget_dead_workers(self._folder)
            self.observer = MetricsObserver(TurnMetrics(registry=None))
        else:
            self.observer = MetricsObserver(TurnMetrics(registry=self.registry))
            ProcessCollector(namespace="personae", registry=self.registry)

    @property
    def multiprocess(self) -> bool:
        return self._folder is not None

    def watch(self, sources: LiveSources) -> None:
        """Expose the live state of the running server (once, when it has been built)."""
        collector = LiveStateCollector(sources)
        if self._folder is None:
            self._live = collector
            self.registry.register(self._frozen)
        else:
            self._publisher = LiveStatePublisher(collector, gauge_modes=GAUGE_MODES)
            self._publisher.publish()

    def publish(self) -> None:
        """Multiprocess mode: write this worker's live state for the others' scrapes."""
        if self._publisher is not None:
            self._publisher.publish()

    async def publish_every(self, interval_s: float) -> None:
        """Multiprocess mode: ``publish`` until cancelled (a no-op loop otherwise)."""
        if self._publisher is None:
            return
        while True:
            await asyncio.sleep(interval_s)
            self.publish()

    async def render(self) -> tuple[bytes, str]:
        """What ``/metrics`` answers, and its content type. The live state is read here, on
        the event loop; the text (milliseconds for a few thousand series) is made in a
        thread, so a scrape does not stall turns."""
        self._read_live_state()
        return await asyncio.to_thread(self._render)

    def exposition(self) -> tuple[bytes, str]:
        """``render``, all in the calling thread (tests, tools)."""
        self._read_live_state()
        return self._render()

    def _read_live_state(self) -> None:
        if self._live is not None:
            self._frozen.families = list(self._live.collect())
        self.publish()

    def _render(self) -> tuple[bytes, str]:
        if self._folder is not None:
            forget_dead_workers(self._folder)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
