"""Scripted replies of the fake backend over a real socket: tool calls streamed as OpenAI
deltas over several chunks, read by the official SDK (streamed, accumulated by its own
stream helper, and whole), and ``{tool_results}`` answered back."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from personae.fakellm import FakeLLMConfig, Scripted, ScriptedCall
from tests.fakellm.conftest import FakeServer

INSTANT = FakeLLMConfig(tokens_per_s=0)
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "dice",
            "description": "Roll dice.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
]
ASK: list[Any] = [{"role": "user", "content": "Roll 2d6 and tell me the time"}]


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_streamed_tool_calls_are_real_openai_deltas(fake_server: FakeServer) -> None:
    calls = (
        ScriptedCall("dice", {"expression": "2d6"}),
        ScriptedCall("time", '{"timezone": "Europe/Paris"}'),
    )
    with fake_server(INSTANT) as (url, fake), client(url) as c:
        fake.enqueue(Scripted(text="Let me see.", tool_calls=calls, pieces=4))
        stream = c.chat.completions.create(
            model="fake",
            messages=ASK,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
        state = ChatCompletionStreamState()
        tool_chunks = 0
        for chunk in stream:
            state.handle_chunk(chunk)
            tool_chunks += bool(chunk.choices and chunk.choices[0].delta.tool_calls)
        completion = state.get_final_completion()

    assert tool_chunks == 5  # a head and four fragments per call, the calls side by side
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me see."
    made = [
        (t.id, t.function.name, json.loads(t.function.arguments))  # type: ignore[union-attr]
        for t in choice.message.tool_calls or []
    ]
    assert made == [
        ("call_1_0", "dice", {"expression": "2d6"}),
        ("call_1_1", "time", {"timezone": "Europe/Paris"}),
    ]
    assert completion.usage is not None
    assert fake.scripted_requests[0]["tools"] == TOOLS


def test_whole_completions_carry_the_tool_calls(fake_server: FakeServer) -> None:
    with fake_server(INSTANT) as (url, fake), client(url) as c:
        fake.enqueue(Scripted(tool_calls=(ScriptedCall("dice", '{"expression": "d20"'),)))
        completion = c.chat.completions.create(model="fake", messages=ASK, tools=TOOLS)

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.function.name == "dice"  # type: ignore[union-attr]
    assert call.function.arguments == '{"expression": "d20"'  # sent as given, broken or not  # type: ignore[union-attr]


def test_an_answer_shows_the_tool_results_it_was_sent(fake_server: FakeServer) -> None:
    messages: list[Any] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "dice", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"total": 7}'},
    ]
    with fake_server(INSTANT) as (url, fake), client(url) as c:
        fake.enqueue(Scripted(text="You got {tool_results}, well done."))
        stream = c.chat.completions.create(model="fake", messages=messages, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    assert text == 'You got {"total": 7}, well done.'


def test_once_the_script_is_spent_the_fake_stamps_again(fake_server: FakeServer) -> None:
    with fake_server(INSTANT) as (url, fake), client(url) as c:
        fake.enqueue(Scripted(text="Scripted."))
        first = c.chat.completions.create(model="fake", messages=ASK)
        second = c.chat.completions.create(model="fake", messages=ASK, max_tokens=3)

    assert first.choices[0].message.content == "Scripted."
    assert (second.choices[0].message.content or "").split()[0].startswith("a")
    assert len(fake.scripted_requests) == 1
    assert fake.stats.requests == 2


def test_a_script_needs_at_least_one_piece() -> None:
    with pytest.raises(ValueError, match="pieces"):
        Scripted(pieces=0)
