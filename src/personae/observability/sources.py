"""What the metrics read from the running server, described by shape rather than by class.

``observability`` may not import the other adapters (``llm`` among them), so the routing
snapshot is described here as protocols that ``llm.pool.RoutingSnapshot`` satisfies; the
composition root hands the real objects in. Everything here is read at scrape time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sized
from dataclasses import dataclass, field
from typing import Protocol


class TimingLike(Protocol):
    @property
    def count(self) -> int: ...
    @property
    def total_s(self) -> float: ...


class BreakerLike(Protocol):
    @property
    def state(self) -> str: ...  # closed | open | half_open
    @property
    def consecutive_failures(self) -> int: ...
    @property
    def opened_total(self) -> int: ...


class BackendLike(Protocol):
    @property
    def breaker(self) -> BreakerLike: ...
    @property
    def calls(self) -> int: ...
    @property
    def successes(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def midway_failures(self) -> int: ...
    @property
    def skipped_open(self) -> int: ...
    @property
    def skipped_busy(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def errors(self) -> Mapping[str, int]: ...
    @property
    def first_token(self) -> TimingLike: ...
    @property
    def duration(self) -> TimingLike: ...


class ChainLike(Protocol):
    @property
    def turns(self) -> int: ...
    @property
    def failovers(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def exhausted(self) -> int: ...
    @property
    def cache_hits(self) -> int: ...


class RoutingLike(Protocol):
    @property
    def backends(self) -> Mapping[str, BackendLike]: ...
    @property
    def chains(self) -> Mapping[str, ChainLike]: ...


class SnapshotSource(Protocol):
    def snapshot(self) -> RoutingLike: ...


class TurnsSource(Protocol):
    @property
    def running_turns(self) -> int: ...
    @property
    def queued_turns(self) -> int: ...
    @property
    def sessions(self) -> Sized: ...


class TaskLike(Protocol):
    @property
    def healthy(self) -> bool: ...
    @property
    def restarts(self) -> int: ...


class TasksSource(Protocol):
    def status(self) -> Mapping[str, TaskLike]: ...  # core.supervisor.Supervisor


class CharactersSource(Protocol):
    @property
    def loaded(self) -> int: ...  # characters serving
    @property
    def invalid(self) -> int: ...  # files that do not load now (a failed reload among them)
    @property
    def watch_failures(self) -> int: ...  # times watching the folder failed


class ChannelsSource(Protocol):
    def health(self) -> Mapping[str, str]: ...  # channel name -> "up", "reconnecting: ..."


@dataclass(frozen=True, slots=True)
class LiveSources:
    """The live state behind the gauges and the backend counters; any may be missing."""

    routing: SnapshotSource | None = None  # llm.pool.BackendPool
    turns: TurnsSource | None = None  # core.hub.ConversationHub
    connections: Sized = field(default_factory=tuple)  # open WebSocket connections
    tasks: TasksSource | None = None  # the background task supervisor
    characters: CharactersSource | None = None
    channels: ChannelsSource | None = None  # chat platforms (core.channels.ChannelGateway)
