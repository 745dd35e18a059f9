"""Skills end to end over the OpenAI-compatible API on a live server: the sample characters'
slash commands are answered by the built-in skills, without the model."""

from __future__ import annotations

import re

import openai

from tests.transports.conftest import Server


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_a_dice_command_is_answered_by_the_skill(server: Server) -> None:
    with client(server) as c:
        completion = c.chat.completions.create(
            model="bram", user="sam", messages=ask("/roll 2d6+1")
        )
    text = completion.choices[0].message.content
    assert text is not None
    match = re.fullmatch(r"🎲 2d6\+1: (\d) \+ (\d) \+ 1 = (\d+)", text)
    assert match is not None, text
    first, second, total = map(int, match.groups())
    assert total == first + second + 1
    assert completion.choices[0].finish_reason == "stop"
    assert server.model.requests == []


def test_a_time_command_streams_like_any_reply(server: Server) -> None:
    with client(server) as c:
        stream = c.chat.completions.create(
            model="assistant", user="sam", messages=ask("/time Europe/Paris"), stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert re.fullmatch(r"It is \d\d:\d\d on \w+, .* in Europe/Paris \(UTC\+0[12]:00\)\.", text)
    assert server.model.requests == []


def test_an_unknown_zone_is_a_clear_reply(server: Server) -> None:
    with client(server) as c:
        completion = c.chat.completions.create(
            model="assistant", user="sam", messages=ask("/time Mars/Olympus")
        )
    assert completion.choices[0].message.content == (
        "Sorry, time failed: unknown time zone 'Mars/Olympus'; use an IANA name like Europe/Paris."
    )


def test_a_character_without_the_skill_gets_the_model(server: Server) -> None:
    server.model.enqueue("Bram has the dice, not me.")
    with client(server) as c:
        completion = c.chat.completions.create(model="aria", user="sam", messages=ask("/roll 2d6"))
        timed = c.chat.completions.create(model="bram", user="sam", messages=ask("/time"))
    assert completion.choices[0].message.content == "Bram has the dice, not me."
    assert timed.choices[0].message.content == "Hello from the fake model."
    assert len(server.model.requests) == 2
