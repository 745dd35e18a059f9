"""A tool-calling round trip through Personae's own OpenAI client path (OpenAICompatChatModel
in a routed chain, driven by the tool loop) against the fake LLM on loopback: streamed
tool-call deltas and whole completions alike."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest

from personae.core.skills import SkillContext, SkillRunner
from personae.core.tool_loop import ToolLoop
from personae.core.types import ChatMessage, ChatRequest, Role, ToolSpec
from personae.fakellm import FakeLLM, FakeLLMConfig, Scripted, ScriptedCall
from personae.llm.guard import GuardedBackend
from personae.llm.openai_compat import OpenAICompatChatModel
from personae.llm.router import RoutedChatModel
from personae.skills.dice import DiceSkill
from tests.live_server import live_server

DICE = DiceSkill()  # its description and schema; each test rolls with its own seeded one
REQUEST = ChatRequest(
    messages=(ChatMessage(Role.USER, "Roll 4d6 for my stats"),),
    tools=(ToolSpec(DICE.name, DICE.description, DICE.parameters),),
)
CONTEXT = SkillContext("sam", "bram", "c1", "Roll 4d6 for my stats")


@pytest.fixture
def fake() -> Iterator[tuple[str, FakeLLM]]:
    llm = FakeLLM(FakeLLMConfig(tokens_per_s=0))
    with live_server(llm) as url:  # type: ignore[arg-type]  # any ASGI app serves
        yield url, llm


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "whole"])
async def test_round_trip(fake: tuple[str, FakeLLM], streaming: bool) -> None:
    url, llm = fake
    llm.enqueue(
        Scripted(
            text="Rolling.", tool_calls=(ScriptedCall("dice", {"expression": "4d6"}),), pieces=6
        ),
        Scripted(text="Your stats roll: {tool_results}"),
    )
    backend = OpenAICompatChatModel(
        name="fake", model="fake", base_url=f"{url}/v1", streaming=streaming
    )
    loop = ToolLoop({"dice": DiceSkill(random.Random(3))}, SkillRunner())

    async with RoutedChatModel([GuardedBackend(backend)]) as model:
        chunks = [chunk async for chunk in loop.stream(model, REQUEST, CONTEXT)]

    first, second = llm.scripted_requests
    assert first["tools"][0]["function"]["name"] == "dice"
    assert ("stream" in first) is streaming
    call, result = second["messages"][1:]
    assert call["role"] == "assistant"
    assert call["content"] == "Rolling."
    assert call["tool_calls"][0]["function"] == {
        "name": "dice",
        "arguments": '{"expression": "4d6"}',
    }
    assert result["tool_call_id"] == call["tool_calls"][0]["id"] == "call_1_0"
    rolled = json.loads(result["content"])["data"]
    expected = random.Random(3)
    assert rolled["rolls"] == [expected.randint(1, 6) for _ in range(4)]
    text = "".join(chunk.text for chunk in chunks)
    assert text == "Rolling.\n\nYour stats roll: " + result["content"]
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
