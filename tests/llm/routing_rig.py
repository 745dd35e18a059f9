"""Helpers for routing tests: time moved by hand, backends on fault-injecting fake servers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from personae.core.ports import ChatModel
from personae.core.types import ChatMessage, ChatRequest, GenerationParams, ModelChunk, Role
from personae.llm.guard import BackendLimits, GuardedBackend
from personae.llm.openai_compat import OpenAICompatChatModel
from personae.llm.retry import Timekeeper

from .fake_openai_server import FakeOpenAIServer

HELLO = ChatRequest(messages=(ChatMessage(Role.USER, "Hello?"),))
EXACT = ChatRequest(
    messages=(ChatMessage(Role.USER, "What is 2 + 2?"),),
    params=GenerationParams(temperature=0.0),
)


@dataclass
class ManualTime:
    """A clock that moves only when told (or when the router sleeps). Jitter draws the top of
    its window, so backoffs are exact."""

    now_s: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    attempt_cost_s: float = 0.0  # how far each backoff moves time beyond its own length

    def now(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds + self.attempt_cost_s

    @staticmethod
    def uniform(low: float, high: float) -> float:
        return high

    @property
    def keeper(self) -> Timekeeper:
        return Timekeeper(now=self.now, sleep=self.sleep, uniform=self.uniform)


@contextmanager
def fake_servers(count: int) -> Iterator[list[FakeOpenAIServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(FakeOpenAIServer()) for _ in range(count)]


def http_model(name: str, base_url: str) -> OpenAICompatChatModel:
    # The client's own read timeout is generous: the router's limits are what tests exercise.
    return OpenAICompatChatModel(
        name=name, model=f"{name}-model", base_url=base_url, timeout_s=30, connect_timeout_s=2
    )


def guarded(
    name: str, server: FakeOpenAIServer | str, time: ManualTime, **limits: object
) -> GuardedBackend:
    url = server if isinstance(server, str) else server.base_url
    return GuardedBackend(
        http_model(name, url),
        BackendLimits(**limits),  # type: ignore[arg-type]
        clock=time.now,
    )


async def collect(model: ChatModel, request: ChatRequest = HELLO) -> list[ModelChunk]:
    return [chunk async for chunk in model.stream(request)]


def text_of(chunks: list[ModelChunk]) -> str:
    return "".join(chunk.text for chunk in chunks)
