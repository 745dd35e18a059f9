"""A custom collector over the server's live state: backend counters and circuit breakers
(``BackendPool.snapshot()``), running and queued turns, sessions, WebSocket connections.

Nothing here counts anything: every value is read at scrape time from the object that owns
it, so nothing is counted twice and nothing drifts. Counters the pool keeps (calls, errors,
...) are exposed as Prometheus counters; states as gauges.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from personae.observability.sources import BackendLike, ChainLike, LiveSources

BREAKER_STATES = ("closed", "half_open", "open")

# How several processes' values of a gauge combine (multiprocess mode); the default is a sum.
GAUGE_MODES = {
    "personae_backend_circuit_state": "livemax",  # 1 if any worker sees the breaker so
    "personae_backend_consecutive_failures": "livemax",
}

_Family = CounterMetricFamily | GaugeMetricFamily | SummaryMetricFamily


class LiveStateCollector(Collector):
    def __init__(self, sources: LiveSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[_Family]:
        yield from self._turns()
        yield from self._background()
        if self.sources.routing is not None:
            routing = self.sources.routing.snapshot()
            yield from _backends(routing.backends.items())
            yield from _chains(routing.chains.items())

    def _turns(self) -> Iterator[_Family]:
        connections = GaugeMetricFamily(
            "personae_websocket_connections", "Open WebSocket connections."
        )
        connections.add_metric([], len(self.sources.connections))
        yield connections
        turns = self.sources.turns
        if turns is None:
            return
        for name, doc, value in (
            ("personae_turns_running", "Turns admitted and running.", turns.running_turns),
            ("personae_turns_queued", "Sends waiting for a free turn slot.", turns.queued_turns),
            (
                "personae_conversation_sessions",
                "Live conversation sessions (a turn running, a device watching, or idle "
                "and not yet expired).",
                len(turns.sessions),
            ),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge

    def _background(self) -> Iterator[_Family]:
        tasks, characters = self.sources.tasks, self.sources.characters
        if tasks is not None:
            up = GaugeMetricFamily(
                "personae_background_task_up",
                "1 while a supervised background task runs, 0 while it waits to restart.",
                labels=["task"],
            )
            restarts = CounterMetricFamily(
                "personae_background_task_restarts",
                "Times a supervised background task crashed and was restarted.",
                labels=["task"],
            )
            for name, status in sorted(tasks.status().items()):
                up.add_metric([name], 1.0 if status.healthy else 0.0)
                restarts.add_metric([name], status.restarts)
            yield up
            yield restarts
        if characters is not None:
            for name, doc, value in (
                ("personae_characters_loaded", "Characters serving.", characters.loaded),
                (
                    "personae_character_files_invalid",
                    "Character files that do not load now (the version before keeps serving).",
                    characters.invalid,
                ),
            ):
                gauge = GaugeMetricFamily(name, doc)
                gauge.add_metric([], value)
                yield gauge
            failures = CounterMetricFamily(
                "personae_character_watch_failures", "Times watching the characters folder failed."
            )
            failures.add_metric([], characters.watch_failures)
            yield failures
        if self.sources.channels is not None:
            up = GaugeMetricFamily(
                "personae_channel_up",
                "1 while a chat platform channel is connected, 0 while it reconnects or is down.",
                labels=["channel"],
            )
            for name, health in sorted(self.sources.channels.health().items()):
                up.add_metric([name], 1.0 if health == "up" else 0.0)
            yield up


def _chains(chains: Iterable[tuple[str, ChainLike]]) -> Iterator[_Family]:
    families = {
        field: CounterMetricFamily(f"personae_route_{field}", doc, labels=["chain"])
        for field, doc in (
            ("turns", "Turns a routed chain of backends served or tried to."),
            ("failovers", "Turns a later backend of the chain answered."),
            ("retries", "Extra rounds over the chain after a backoff."),
            ("exhausted", "Turns no backend of the chain could answer."),
            ("cache_hits", "Replies served from the response cache."),
        )
    }
    for name, chain in chains:
        for field, family in families.items():
            family.add_metric([name], getattr(chain, field))
    yield from families.values()


def _backends(backends: Iterable[tuple[str, BackendLike]]) -> Iterator[_Family]:
    def counter(name: str, doc: str, *labels: str) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=["backend", *labels])

    def gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=["backend", *labels])

    calls = counter("personae_backend_calls", "Attempts that reached the backend.")
    successes = counter("personae_backend_successes", "Replies that streamed to the end.")
    failures = counter("personae_backend_failures", "Attempts that ended in an error.")
    midway = counter(
        "personae_backend_midway_failures", "Failures after text had reached the user."
    )
    errors = counter("personae_backend_errors", "Backend errors by code.", "code")
    skipped = counter("personae_backend_skipped", "Turns that passed the backend over.", "reason")
    opened = counter("personae_backend_circuit_opened", "Times the circuit breaker opened.")
    in_flight = gauge("personae_backend_in_flight", "Calls in progress.")
    state = gauge(
        "personae_backend_circuit_state", "Circuit breaker state: 1 for the current one.", "state"
    )
    failing = gauge(
        "personae_backend_consecutive_failures", "Failures in a row (the breaker's count)."
    )
    first_token = SummaryMetricFamily(
        "personae_backend_first_token_seconds",
        "From the call's start to its first text.",
        labels=["backend"],
    )
    reply = SummaryMetricFamily(
        "personae_backend_reply_seconds",
        "From the call's start to the end of a successful reply.",
        labels=["backend"],
    )
    for name, backend in backends:
        calls.add_metric([name], backend.calls)
        successes.add_metric([name], backend.successes)
        failures.add_metric([name], backend.failures)
        midway.add_metric([name], backend.midway_failures)
        for code, count in sorted(backend.errors.items()):
            errors.add_metric([name, code], count)
        skipped.add_metric([name, "circuit_open"], backend.skipped_open)
        skipped.add_metric([name, "busy"], backend.skipped_busy)
        opened.add_metric([name], backend.breaker.opened_total)
        in_flight.add_metric([name], backend.in_flight)
        current = str(backend.breaker.state)
        for candidate in BREAKER_STATES:
            state.add_metric([name, candidate], 1.0 if candidate == current else 0.0)
        failing.add_metric([name], backend.breaker.consecutive_failures)
        timing = backend.first_token
        first_token.add_metric([name], count_value=timing.count, sum_value=timing.total_s)
        timing = backend.duration
        reply.add_metric([name], count_value=timing.count, sum_value=timing.total_s)
    yield from (calls, successes, failures, midway, errors, skipped, opened)
    yield from (in_flight, state, failing, first_token, reply)
