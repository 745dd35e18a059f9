"""Tool calls through RoutedChatModel over real HTTP: they pass through the chain; a tool call
commits the chain as text does (no failover once one has been yielded); a fallback that
cannot call tools still answers, with the results so far as notes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest

from personae.core.tool_calls import ToolCallAssembler
from personae.core.types import ChatMessage, ChatRequest, GenerationParams, Role, ToolCall, ToolSpec
from personae.errors import BackendUnavailable
from personae.llm.cache import ResponseCache
from personae.llm.guard import BackendLimits, GuardedBackend
from personae.llm.retry import RetryPolicy
from personae.llm.router import RoutedChatModel

from .fake_openai_server import Call, Fail, FakeOpenAIServer, Reply
from .routing_rig import ManualTime, collect, fake_servers, guarded, http_model

DICE = ToolSpec("dice", "Roll dice.", {"type": "object"})
ROLL = ChatRequest(messages=(ChatMessage(Role.USER, "Roll 2d6"),), tools=(DICE,))
CALL = Call("dice", '{"expression": "2d6"}', id="call_1")


@dataclass
class Rig:
    a: FakeOpenAIServer
    b: FakeOpenAIServer
    time: ManualTime
    stack: AsyncExitStack

    async def chain(
        self, *backends: GuardedBackend, cache: ResponseCache | None = None
    ) -> RoutedChatModel:
        model = RoutedChatModel(
            backends, retry=RetryPolicy(retries=0), cache=cache, time=self.time.keeper
        )
        return await self.stack.enter_async_context(model)

    def backend(self, name: str) -> GuardedBackend:
        return guarded(name, {"a": self.a, "b": self.b}[name], self.time)


@pytest.fixture(scope="module")
def servers() -> Iterator[list[FakeOpenAIServer]]:
    with fake_servers(2) as running:
        yield running


@pytest.fixture
async def rig(servers: list[FakeOpenAIServer]) -> AsyncIterator[Rig]:
    for server in servers:
        server.reset()
    async with AsyncExitStack() as stack:
        yield Rig(*servers, time=ManualTime(), stack=stack)


def plain(name: str, server: FakeOpenAIServer, time: ManualTime) -> GuardedBackend:
    """A backend declared unable to call tools (``options: {tools: false}``)."""
    model = http_model(name, server.base_url)
    model.supports_tools = False
    return GuardedBackend(model, BackendLimits(), clock=time.now)


async def test_a_reply_of_tool_calls_alone_passes_through(rig: Rig) -> None:
    rig.a.enqueue(Reply([], tool_calls=[CALL], finish_reason="tool_calls"))
    model = await rig.chain(rig.backend("a"), rig.backend("b"))

    chunks = await collect(model, ROLL)

    assembler = ToolCallAssembler()
    for chunk in chunks:
        assembler.feed(chunk.tool_calls)
    assert assembler.calls() == (ToolCall("call_1", "dice", '{"expression": "2d6"}'),)
    assert chunks[-1].finish_reason == "tool_calls"
    assert model.supports_tools is True
    assert rig.a.requests[0]["body"]["tools"][0]["function"]["name"] == "dice"
    assert model.chain[0].snapshot().successes == 1


async def test_no_failover_once_a_tool_call_was_yielded(rig: Rig) -> None:
    rig.a.enqueue(Reply([], tool_calls=[CALL], break_after_pieces=2))
    model = await rig.chain(rig.backend("a"), rig.backend("b"))
    received = []

    with pytest.raises(BackendUnavailable):
        async for chunk in model.stream(ROLL):
            received.append(chunk)

    assert [len(chunk.tool_calls) for chunk in received] == [1, 1]
    assert len(rig.b.requests) == 0  # the fallback would not finish the primary's call
    assert model.stats.failovers == 0
    assert model.chain[0].snapshot().midway_failures == 1


async def test_a_failure_before_the_call_fails_over_with_the_tools(rig: Rig) -> None:
    rig.a.enqueue(Fail(503))
    rig.b.enqueue(Reply([], tool_calls=[CALL]))
    model = await rig.chain(rig.backend("a"), rig.backend("b"))

    chunks = await collect(model, ROLL)

    assert any(chunk.tool_calls for chunk in chunks)
    assert rig.b.requests[0]["body"]["tools"] == rig.a.requests[0]["body"]["tools"]
    assert model.stats.failovers == 1


async def test_a_fallback_that_cannot_call_tools_gets_the_results_as_notes(rig: Rig) -> None:
    rig.a.enqueue(Fail(500))
    rig.b.enqueue(Reply(["You", " rolled", " 7."]))
    model = await rig.chain(rig.backend("a"), plain("b", rig.b, rig.time))
    call = ToolCall("call_1", "dice", '{"expression": "2d6"}')
    second_round = ChatRequest(
        messages=(
            *ROLL.messages,
            ChatMessage(Role.ASSISTANT, "", tool_calls=(call,)),
            ChatMessage(Role.TOOL, '{"total": 7}', name="dice", tool_call_id="call_1"),
        ),
        tools=(DICE,),
    )

    chunks = await collect(model, second_round)

    assert "".join(c.text for c in chunks) == "You rolled 7."
    assert "tools" in rig.a.requests[0]["body"]
    fallback = rig.b.requests[0]["body"]
    assert "tools" not in fallback
    assert fallback["messages"] == [
        {"role": "user", "content": "Roll 2d6"},
        {"role": "system", "content": '[skill dice result: {"total": 7}]'},
    ]


async def test_a_chain_of_backends_without_tools_offers_none(rig: Rig) -> None:
    model = await rig.chain(plain("a", rig.a, rig.time), plain("b", rig.b, rig.time))
    assert model.supports_tools is False


def test_the_cache_tells_requests_with_and_without_tools_apart() -> None:
    exact = GenerationParams(temperature=0.0)
    bare = ChatRequest(messages=ROLL.messages, params=exact)
    offered = ChatRequest(messages=ROLL.messages, params=exact, tools=(DICE,))
    told = ChatRequest(messages=ROLL.messages, params=exact, tools=(DICE,), tool_choice="none")

    keys = {ResponseCache.key("chain", request) for request in (bare, offered, told)}

    assert len(keys) == 3
    assert None not in keys
