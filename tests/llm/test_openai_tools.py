"""Tool calling through OpenAICompatChatModel against a real HTTP server on 127.0.0.1: the
tools go out in OpenAI's format, streamed ``tool_calls`` pieces come back and make whole
calls, whole (non-streamed) completions too; broken ones are protocol errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from personae.core.tool_calls import ToolCallAssembler
from personae.core.types import (
    ChatMessage,
    ChatRequest,
    ModelChunk,
    Role,
    ToolCall,
    ToolSpec,
    Usage,
)
from personae.errors import BackendProtocolError, BackendUnavailable
from personae.llm.llamacpp import LlamaCppChatModel
from personae.llm.openai_compat import OpenAICompatChatModel
from personae.plugins.specs import BackendConfig

from .fake_openai_server import Call, FakeOpenAIServer, Raw, Reply

DICE = ToolSpec(
    "dice",
    "Roll dice written as NdM+K.",
    {"type": "object", "properties": {"expression": {"type": "string"}}},
)
ROLL = ChatRequest(messages=(ChatMessage(Role.USER, "Roll 2d6"),), tools=(DICE,))


def make_model(base_url: str, **options: bool) -> OpenAICompatChatModel:
    return OpenAICompatChatModel(
        name="upstream", model="test-model", base_url=base_url, timeout_s=5.0, **options
    )


@pytest.fixture
async def model(server: FakeOpenAIServer) -> AsyncIterator[OpenAICompatChatModel]:
    async with make_model(server.base_url) as opened:
        yield opened


async def collect(model: OpenAICompatChatModel, request: ChatRequest = ROLL) -> list[ModelChunk]:
    return [chunk async for chunk in model.stream(request)]


def calls_of(chunks: list[ModelChunk]) -> tuple[ToolCall, ...]:
    assembler = ToolCallAssembler()
    for chunk in chunks:
        assembler.feed(chunk.tool_calls)
    return assembler.calls()


async def test_sends_the_tools_and_the_tool_rounds_in_openai_form(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    call = ToolCall("call_9", "dice", '{"expression": "2d6"}')
    request = ChatRequest(
        messages=(
            ChatMessage(Role.USER, "Roll 2d6"),
            ChatMessage(Role.ASSISTANT, "", tool_calls=(call,)),
            ChatMessage(Role.TOOL, '{"total": 7}', name="dice", tool_call_id="call_9"),
        ),
        tools=(DICE,),
        tool_choice="none",
    )

    await collect(model, request)

    body = server.requests[0]["body"]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "dice",
                "description": "Roll dice written as NdM+K.",
                "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
            },
        }
    ]
    assert body["tool_choice"] == "none"
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "dice", "arguments": '{"expression": "2d6"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": '{"total": 7}'},
    ]


async def test_no_tools_no_tool_fields(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    await collect(model, ChatRequest(messages=ROLL.messages))
    body = server.requests[0]["body"]
    assert "tools" not in body
    assert "tool_choice" not in body


async def test_streamed_tool_call_pieces_make_whole_calls(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(
        Reply(
            ["Rolling", " now."],
            tool_calls=[
                Call("dice", '{"expression": "2d6+1"}', id="call_a"),
                Call("time", '{"timezone": "Europe/Paris"}', id="call_b"),
            ],
            pieces=5,
            finish_reason="tool_calls",
            usage=(20, 9),
        )
    )

    chunks = await collect(model)

    assert "".join(c.text for c in chunks) == "Rolling now."
    pieced = [c for c in chunks if c.tool_calls]
    assert len(pieced) == 6  # a head and five fragments per call, the calls side by side
    assert all(len(c.tool_calls) == 2 for c in pieced)
    assert calls_of(chunks) == (
        ToolCall("call_a", "dice", '{"expression": "2d6+1"}'),
        ToolCall("call_b", "time", '{"timezone": "Europe/Paris"}'),
    )
    assert chunks[-1] == ModelChunk(finish_reason="tool_calls", usage=Usage(20, 9))


async def test_whole_completions_carry_tool_calls_too(server: FakeOpenAIServer) -> None:
    server.enqueue(
        Reply([], tool_calls=[Call("dice", '{"expression": "d20"}', id="c7")], usage=(5, 2))
    )

    async with make_model(server.base_url, streaming=False) as whole:
        chunks = await collect(whole)

    body = server.requests[0]["body"]
    assert "stream" not in body
    assert "stream_options" not in body
    assert calls_of(chunks) == (ToolCall("c7", "dice", '{"expression": "d20"}'),)
    assert chunks[-1] == ModelChunk(finish_reason="stop", usage=Usage(5, 2))


async def test_whole_completions_carry_text(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(["Just", " words"]))
    async with make_model(server.base_url, streaming=False) as whole:
        chunks = await collect(whole)
    assert [c.text for c in chunks] == ["Just words", ""]


async def test_a_server_declared_without_tools_is_offered_none(server: FakeOpenAIServer) -> None:
    async with make_model(server.base_url, tools=False) as plain:
        assert plain.supports_tools is False
        await collect(plain)
    assert "tools" not in server.requests[0]["body"]


def test_options_turn_tools_and_streaming_off() -> None:
    def built(**options: object) -> OpenAICompatChatModel:
        config = BackendConfig(name="x", kind="openai", model="m", options=options)
        return OpenAICompatChatModel.from_config(config)

    assert (built().supports_tools, built().streaming) == (True, True)
    assert built(tools=False, stream="false").supports_tools is False
    assert built(tools=False, stream="off").streaming is False
    assert built(stream="yes").streaming is True


def _event(delta: object, finish: str | None = None) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


FINISH = _event({}, "tool_calls") + b"data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param(_event({"tool_calls": {"index": 0}}) + FINISH, "not a list", id="not-a-list"),
        pytest.param(
            _event({"tool_calls": [{"function": {"name": "dice"}}]}) + FINISH,
            "index",
            id="no-index",
        ),
        pytest.param(
            _event({"tool_calls": [{"index": "0", "function": {"name": "dice"}}]}) + FINISH,
            "index is str",
            id="index-not-a-number",
        ),
        pytest.param(
            _event({"tool_calls": [{"index": 0, "function": {"name": "dice", "arguments": {}}}]})
            + FINISH,
            "arguments is dict",
            id="arguments-not-text",
        ),
        pytest.param(
            _event({"tool_calls": [{"index": 0, "id": "a", "function": {"arguments": "{}"}}]})
            + FINISH,
            "no function name",
            id="no-name",
        ),
        pytest.param(
            _event({"tool_calls": [{"index": 0, "function": "dice"}]}) + FINISH,
            "function is str",
            id="function-not-an-object",
        ),
        pytest.param(
            _event({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "dice"}}]}),
            "without a finish reason",
            id="stream-ends-mid-call",
        ),
    ],
)
async def test_broken_tool_calls_are_protocol_errors(
    server: FakeOpenAIServer, model: OpenAICompatChatModel, body: bytes, words: str
) -> None:
    server.enqueue(Raw(body))

    with pytest.raises(BackendProtocolError, match=words) as caught:
        await collect(model)

    assert caught.value.backend == "upstream"


async def test_a_broken_whole_completion_is_a_protocol_error(server: FakeOpenAIServer) -> None:
    bad = {"choices": [{"index": 0, "message": {"tool_calls": [{"id": "x"}]}}]}
    server.enqueue(Raw(json.dumps(bad).encode(), "application/json"))

    async with make_model(server.base_url, streaming=False) as whole:
        with pytest.raises(BackendProtocolError, match="function"):
            await collect(whole)


async def test_a_stream_that_breaks_inside_a_tool_call_is_unavailable(
    server: FakeOpenAIServer, model: OpenAICompatChatModel
) -> None:
    server.enqueue(
        Reply([], tool_calls=[Call("dice", '{"expression": "2d6"}')], break_after_pieces=2)
    )
    received: list[ModelChunk] = []

    with pytest.raises(BackendUnavailable, match="broke off"):
        async for chunk in model.stream(ROLL):
            received.append(chunk)

    assert len(received) == 2  # the pieces that arrived went on; the call is not whole


def test_the_local_model_declares_it_cannot_call_tools() -> None:
    assert LlamaCppChatModel.supports_tools is False
    assert OpenAICompatChatModel.supports_tools is True  # unless ``options: {tools: false}``
