"""Every configured backend with its guards, and the routed chains built over them. A backend
named by several chains is guarded once: one breaker, one concurrency limit, one set of
counters. ``snapshot`` is the read-only view the metrics endpoint scrapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from personae.core.ports import ChatModel
from personae.errors import ConfigurationError
from personae.llm.cache import ResponseCache
from personae.llm.guard import BackendLimits, GuardedBackend
from personae.llm.retry import RetryPolicy, Timekeeper
from personae.llm.router import RoutedChatModel
from personae.llm.stats import BackendSnapshot, ChainSnapshot


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    backends: Mapping[str, BackendSnapshot]
    chains: Mapping[str, ChainSnapshot]


class BackendPool:
    def __init__(
        self,
        backends: Mapping[str, ChatModel],
        *,
        limits: Mapping[str, BackendLimits] | None = None,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
        time: Timekeeper | None = None,
    ) -> None:
        limits = limits or {}
        self.time = time = time or Timekeeper()
        self.guards = {
            name: GuardedBackend(model, limits.get(name), clock=time.now)
            for name, model in backends.items()
        }
        self.retry = retry or RetryPolicy()
        self.cache = cache
        self._chains: dict[tuple[str, ...], RoutedChatModel] = {}

    def chain(self, names: tuple[str, ...]) -> RoutedChatModel:
        """The routed model over these backends, built once per distinct chain."""
        if names not in self._chains:
            unknown = [name for name in names if name not in self.guards]
            if unknown:
                raise ConfigurationError(f"unknown backend(s) {', '.join(unknown)}")
            self._chains[names] = RoutedChatModel(
                [self.guards[name] for name in names],
                retry=self.retry,
                cache=self.cache,
                time=self.time,
            )
        return self._chains[names]

    def snapshot(self) -> RoutingSnapshot:
        return RoutingSnapshot(
            backends=MappingProxyType({n: g.snapshot() for n, g in self.guards.items()}),
            chains=MappingProxyType({c.name: c.snapshot() for c in self._chains.values()}),
        )
