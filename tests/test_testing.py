"""The test doubles shipped in personae.testing."""

from __future__ import annotations

import asyncio

import pytest

from personae.core.types import ChatMessage, ChatRequest, ModelChunk, Role, Usage
from personae.errors import BackendTimeout, BackendUnavailable
from personae.testing import FakeChatModel, split_tokens


def ask(text: str) -> ChatRequest:
    return ChatRequest(
        messages=(ChatMessage(Role.SYSTEM, "Be kind."), ChatMessage(Role.USER, text))
    )


async def texts(model: FakeChatModel, request: ChatRequest) -> list[str]:
    return [chunk.text async for chunk in model.stream(request) if chunk.finish_reason is None]


def test_split_tokens_keeps_the_spaces() -> None:
    assert split_tokens("Hello there,  friend!") == ["Hello", " there,", "  friend!"]
    assert split_tokens("") == []


async def test_default_reply_ends_with_a_final_chunk_counting_words() -> None:
    model = FakeChatModel()

    chunks = [chunk async for chunk in model.stream(ask("hi there"))]

    assert "".join(c.text for c in chunks) == "Hello from the fake model."
    # Usage counts words: 2 + 2 prompt words, 5 reply words.
    assert chunks[-1] == ModelChunk(finish_reason="stop", usage=Usage(4, 5))


async def test_scripted_replies_come_in_order_then_the_default() -> None:
    model = FakeChatModel(default_reply="fallback")
    model.enqueue("first reply")
    model.enqueue(["sec", "ond"])
    assert model.pending == 2

    assert await texts(model, ask("1")) == ["first", " reply"]
    assert await texts(model, ask("2")) == ["sec", "ond"]
    assert await texts(model, ask("3")) == ["fallback"]
    assert model.pending == 0


async def test_records_every_request() -> None:
    model = FakeChatModel()
    first, second = ask("one"), ask("two")

    await texts(model, first)
    await texts(model, second)

    assert model.requests == [first, second]


async def test_waits_before_the_first_token_and_between_tokens() -> None:
    model = FakeChatModel()
    model.enqueue(["a", "b", "c"], first_token_delay_s=0.05, delay_s=0.02)
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals: list[float] = []

    async for chunk in model.stream(ask("go")):
        if chunk.text:
            arrivals.append(loop.time())

    slack = 0.005  # lower bounds only: sleeping never ends much early
    assert arrivals[0] - start >= 0.05 - slack
    assert arrivals[1] - arrivals[0] >= 0.02 - slack
    assert arrivals[2] - arrivals[1] >= 0.02 - slack


async def test_delays_do_not_block_other_streams() -> None:
    slow, fast = FakeChatModel(name="slow"), FakeChatModel(name="fast")
    slow.enqueue("late", first_token_delay_s=0.2)
    fast.enqueue("early")
    finished: list[str] = []

    async def run(model: FakeChatModel) -> None:
        await texts(model, ask("go"))
        finished.append(model.name)

    async with asyncio.TaskGroup() as group:
        group.create_task(run(slow))
        group.create_task(run(fast))

    assert finished == ["fast", "slow"]


async def test_an_error_without_a_count_is_raised_before_any_token() -> None:
    model = FakeChatModel()
    model.enqueue("never seen", error=BackendUnavailable("down", backend="fake"))
    received: list[ModelChunk] = []

    with pytest.raises(BackendUnavailable):
        async for chunk in model.stream(ask("hi")):
            received.append(chunk)

    assert received == []


async def test_an_error_after_n_tokens() -> None:
    model = FakeChatModel()
    model.enqueue(
        "one two three", error=BackendTimeout("slow", backend="fake"), error_after_tokens=2
    )
    received: list[str] = []

    with pytest.raises(BackendTimeout):
        async for chunk in model.stream(ask("hi")):
            received.append(chunk.text)

    assert received == ["one", " two"]


async def test_an_error_after_more_tokens_than_the_reply_has_replaces_the_final_chunk() -> None:
    model = FakeChatModel()
    model.enqueue("one two", error=BackendUnavailable("gone", backend="fake"), error_after_tokens=9)
    received: list[ModelChunk] = []

    with pytest.raises(BackendUnavailable):
        async for chunk in model.stream(ask("hi")):
            received.append(chunk)

    assert [c.text for c in received] == ["one", " two"]
    assert all(c.finish_reason is None for c in received)


async def test_counting_name_and_context_window() -> None:
    model = FakeChatModel(name="scripted", context_window=128)

    assert model.count_tokens("three little words") == 3
    assert model.count_tokens("") == 0
    assert (model.name, model.context_window) == ("scripted", 128)
    async with model:  # a Resource like every backend
        assert await texts(model, ask("x"))
