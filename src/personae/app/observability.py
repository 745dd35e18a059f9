"""Metrics and the per-turn log line, wired for one runtime (docs/operations.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from personae.core.hub import ConversationHub
from personae.core.observe import ObserverFanout, TurnObserver
from personae.core.supervisor import Supervisor
from personae.llm.pool import BackendPool
from personae.observability.metrics import Metrics
from personae.observability.multiprocess import ENV
from personae.observability.sources import ChannelsSource, CharactersSource, LiveSources
from personae.observability.turn_log import TurnLogObserver
from personae.settings import Settings


@dataclass(frozen=True, slots=True)
class Observability:
    observer: TurnObserver  # what the service and the hub report to
    metrics: Metrics | None  # None: /metrics is off
    connections: set[Any] = field(default_factory=set)  # open WebSocket connections


def build_observability(settings: Settings) -> Observability:
    """A registry of this runtime's own (multiprocess when ``PROMETHEUS_MULTIPROC_DIR`` is
    set) and the observers: metrics, then the log line."""
    metrics = Metrics(multiprocess_dir=os.environ.get(ENV)) if settings.metrics.enabled else None
    observers: list[TurnObserver] = [TurnLogObserver()]
    if metrics is not None:
        observers.insert(0, metrics.observer)
    return Observability(observer=ObserverFanout(observers), metrics=metrics)


def watch_live_state(
    obs: Observability,
    *,
    pool: BackendPool,
    hub: ConversationHub,
    settings: Settings,
    supervisor: Supervisor,
    characters: CharactersSource | None = None,
    channels: ChannelsSource | None = None,
) -> None:
    """Expose the pool, the hub, the connections, the background tasks and the characters;
    in multiprocess mode also publish them every ``metrics.publish_interval_s`` (a task of
    the supervisor's)."""
    metrics = obs.metrics
    if metrics is None:
        return
    metrics.watch(
        LiveSources(
            routing=pool,
            turns=hub,
            connections=obs.connections,
            tasks=supervisor,
            characters=characters,
            channels=channels,
        )
    )
    if metrics.multiprocess:
        interval_s = settings.metrics.publish_interval_s
        supervisor.start("metrics-publisher", lambda: metrics.publish_every(interval_s))
