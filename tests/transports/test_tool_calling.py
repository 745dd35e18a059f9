"""The model calls skills, end to end: the official ``openai`` client talks to a live Personae
server over its OpenAI-compatible API; Personae's backend is the fake LLM on another live
server on loopback, scripted to call the built-in dice and time skills with streamed tool-call
deltas. Nothing is faked between the two but the model's words."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import openai
import pytest
import sqlean

from personae.app import build_app
from personae.fakellm import FakeLLM, FakeLLMConfig, Scripted, ScriptedCall
from personae.settings import Settings
from tests.live_server import live_server
from tests.transports.conftest import REPO_CHARACTERS


@dataclass
class Stack:
    url: str
    fake: FakeLLM
    settings: Settings

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)

    def stored_replies(self) -> list[tuple[str, str]]:
        with sqlean.connect(str(self.settings.database_path)) as db:
            rows = db.execute(
                "SELECT content, model FROM messages WHERE role = 'assistant' ORDER BY seq"
            )
            return list(rows)


def make_stack(tmp_path: Path, fake: FakeLLM, fake_url: str, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        characters_dir=REPO_CHARACTERS,
        watch_characters=False,
        llm={"kind": "openai", "base_url": f"{fake_url}/v1", "model": "fake"},  # type: ignore[arg-type]
        routes={"retry": {"retries": 0}},  # type: ignore[arg-type]
        **extra,
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    fake = FakeLLM(FakeLLMConfig(tokens_per_s=0))
    with live_server(fake) as fake_url:  # type: ignore[arg-type]  # any ASGI app serves
        settings = make_stack(tmp_path, fake, fake_url)
        with live_server(build_app(settings)) as url:
            yield Stack(url, fake, settings)


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def test_the_model_rolls_dice_through_the_skill(stack: Stack) -> None:
    stack.fake.enqueue(
        Scripted(tool_calls=(ScriptedCall("dice", {"expression": "2d6+1"}),), pieces=4),
        Scripted(text="The dice say {tool_results}"),
    )
    with stack.client() as c:
        stream = c.chat.completions.create(
            model="assistant", user="sam", messages=ask("Roll 2d6+1 for me"), stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)

    first, second = stack.fake.scripted_requests
    offered = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert set(offered) == {"dice", "time"}  # the assistant's skills
    assert offered["dice"]["parameters"]["required"] == ["expression"]
    [result] = tool_messages(second)
    assert result["tool_call_id"] == "call_1_0"
    data = json.loads(result["content"])["data"]
    assert data["expression"] == "2d6+1"
    assert data["total"] == sum(data["rolls"]) + 1
    assert all(1 <= roll <= 6 for roll in data["rolls"])
    assert text == "The dice say " + result["content"]  # what the user read is the answer
    assert stack.stored_replies()[-1] == (text, "openai")


def test_the_model_tells_the_time_through_the_skill(stack: Stack) -> None:
    stack.fake.enqueue(
        Scripted(tool_calls=(ScriptedCall("time", {"timezone": "Asia/Tokyo"}),)),
        Scripted(text="Here: {tool_results}"),
    )
    with stack.client() as c:
        completion = c.chat.completions.create(
            model="assistant", user="sam", messages=ask("What time is it in Tokyo?")
        )

    [result] = tool_messages(stack.fake.scripted_requests[1])
    data = json.loads(result["content"])["data"]
    assert data["timezone"] == "Asia/Tokyo"
    assert datetime.fromisoformat(data["iso"]).utcoffset().total_seconds() == 9 * 3600  # type: ignore[union-attr]
    assert re.match(r"It is \d\d:\d\d on ", json.loads(result["content"])["result"])
    assert completion.choices[0].message.content == "Here: " + result["content"]


def test_both_skills_in_one_round_then_a_bad_call_then_the_answer(stack: Stack) -> None:
    stack.fake.enqueue(
        Scripted(
            tool_calls=(
                ScriptedCall("dice", {"expression": "d20"}),
                ScriptedCall("time", {}),
                ScriptedCall("weather", {"city": "Oslo"}),
            )
        ),
        Scripted(tool_calls=(ScriptedCall("dice", "{not json"),)),
        Scripted(text="All done."),
    )
    with stack.client() as c:
        completion = c.chat.completions.create(
            model="assistant", user="sam", messages=ask("Roll a d20, the time, the weather")
        )

    assert completion.choices[0].message.content == "All done."
    _, second, third = stack.fake.scripted_requests
    rolled, timed, weather = (json.loads(m["content"]) for m in tool_messages(second))
    assert 1 <= rolled["data"]["total"] <= 20
    assert timed["data"]["timezone"] == "UTC"
    assert weather == {"error": "there is no tool 'weather'; the tools are: dice, time"}
    refused = json.loads(tool_messages(third)[-1]["content"])
    assert refused["error"].startswith("invalid arguments: the arguments are not JSON")
    assert refused["parameters"]["required"] == ["expression"]


def test_the_round_bound_comes_from_settings(tmp_path: Path) -> None:
    fake = FakeLLM(FakeLLMConfig(tokens_per_s=0))
    call = Scripted(tool_calls=(ScriptedCall("dice", {"expression": "d6"}),))
    fake.enqueue(call, call, Scripted(text="Enough."))
    with live_server(fake) as fake_url:  # type: ignore[arg-type]
        settings = make_stack(tmp_path, fake, fake_url, skills={"tool_rounds": 2})
        with live_server(build_app(settings)) as url:
            stack = Stack(url, fake, settings)
            with stack.client() as c:
                completion = c.chat.completions.create(
                    model="assistant", user="sam", messages=ask("roll, roll, roll")
                )

    assert completion.choices[0].message.content == "Enough."
    choices = [body["tool_choice"] for body in fake.scripted_requests]
    assert choices == ["auto", "auto", "none"]


def test_a_model_that_never_stops_calling_is_a_clear_error(tmp_path: Path) -> None:
    fake = FakeLLM(FakeLLMConfig(tokens_per_s=0))
    call = Scripted(tool_calls=(ScriptedCall("dice", {"expression": "d6"}),))
    fake.enqueue(call, call)
    with live_server(fake) as fake_url:  # type: ignore[arg-type]
        settings = make_stack(tmp_path, fake, fake_url, skills={"tool_rounds": 1})
        with live_server(build_app(settings)) as url:
            stack = Stack(url, fake, settings)
            with stack.client() as c, pytest.raises(openai.APIStatusError) as caught:
                c.chat.completions.create(
                    model="assistant", user="sam", messages=ask("roll forever")
                )

    assert caught.value.status_code == 502
    assert "still asked for tools after 1 round" in str(caught.value)
    assert stack.stored_replies() == []  # the turn was discarded, greeting and all
