"""The Discord channel end to end against a fake Discord (REST and gateway) on loopback,
through discord.py's own parsing and HTTP client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yarl

import personae.channels.discord  # first: it imports discord.py quietly (see there)
from tests.channels.fake_discord import BOT, FakeDiscord
from tests.channels.helpers import Personae, eventually, make_settings, running
from tests.live_server import live_server

DM = "700"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDiscord]:
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    api = FakeDiscord()
    with live_server(api.app) as url:  # type: ignore[arg-type]
        monkeypatch.setattr(Route, "BASE", f"{url}/api/v10")
        monkeypatch.setattr(
            DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(url.replace("http", "ws", 1) + "/gw")
        )
        yield api


@pytest.fixture
def personae(
    tmp_path: Path, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Personae]:
    monkeypatch.setenv("TEST_DISCORD_TOKEN", "discord-token")
    adapters = {
        "discord": {
            "kind": "discord",
            "default_character": "aria",
            "token_env": "TEST_DISCORD_TOKEN",
            "options": {"max_ratelimit_s": 5},
        }
    }
    with running(make_settings(tmp_path, adapters)) as server:
        yield server


async def connected(fake: FakeDiscord) -> None:
    await eventually(lambda: fake.connections >= 1)
    await asyncio.sleep(0.3)  # READY parsed


async def test_a_dm_gets_a_reply_streamed_by_edits(personae: Personae, fake: FakeDiscord) -> None:
    await connected(fake)
    words = [f" w{i}" for i in range(30)]
    personae.model.enqueue(words, delay_s=0.08)  # 2.4 s of streaming
    sam = fake.user_writes("Hello Aria")
    await eventually(lambda: fake.texts_in(DM) == ["".join(words).strip()], timeout_s=15)
    methods = [m["method"] for m in fake.sent]
    assert methods.count("post") == 1
    assert 1 <= methods.count("patch") <= 5
    assert str(fake.sent[0]["reference"]["message_id"]) == sam["id"]
    assert "typing" in fake.calls


async def test_in_guilds_it_answers_mentions_replies_and_names_only(
    personae: Personae, fake: FakeDiscord
) -> None:
    await connected(fake)
    room = {"channel": "800", "guild": "1"}
    fake.user_writes("just talking", **room)
    fake.user_writes("<@999> hello there", mentions=[BOT], **room)
    await eventually(lambda: len(personae.model.requests) == 1)
    assert personae.model.requests[0].messages[-1].content == "hello there"  # mention stripped
    fake.user_writes("Bram, what say you?", **room)
    await eventually(lambda: len(personae.model.requests) == 2)
    assert personae.model.requests[1].assistant_name == "Bram"
    bot_message = fake._message("4999", "800", "earlier words")
    fake.user_writes("and then?", reply_to=bot_message, **room)
    await eventually(lambda: len(personae.model.requests) == 3)
    fake.user_writes("bots talk too", author=BOT, **room)
    await asyncio.sleep(0.5)
    assert len(personae.model.requests) == 3


async def test_a_long_reply_is_split_at_2000_characters(
    personae: Personae, fake: FakeDiscord
) -> None:
    await connected(fake)
    reply = " ".join(f"Line {i} of the ballad ends here." for i in range(150))  # ~5,100
    personae.model.enqueue(reply)
    fake.user_writes("Sing it all")
    await eventually(lambda: len(fake.texts_in(DM)) == 3, timeout_s=15)
    parts = fake.texts_in(DM)
    assert all(len(p) <= 2000 and p.endswith("here.") for p in parts)
    assert " ".join(parts) == reply


async def test_a_429_is_waited_out_and_the_reply_arrives_once(
    personae: Personae, fake: FakeDiscord
) -> None:
    await connected(fake)
    fake.faults.extend([("post", 429, 1.0), ("post", 429, 1.0)])
    personae.model.enqueue("In good time.")
    started = time.monotonic()
    fake.user_writes("Now?")
    await eventually(lambda: fake.texts_in(DM) == ["In good time."], timeout_s=15)
    assert time.monotonic() - started >= 1.0
    await asyncio.sleep(0.5)
    assert [m["method"] for m in fake.sent].count("post") == 1


async def test_a_dropped_gateway_is_reconnected(personae: Personae, fake: FakeDiscord) -> None:
    await connected(fake)
    fake.events.put("close")
    await eventually(lambda: fake.connections == 2, timeout_s=10)
    await asyncio.sleep(0.3)
    personae.model.enqueue("Back again.")
    fake.user_writes("Anyone?")
    await eventually(lambda: fake.texts_in(DM) == ["Back again."], timeout_s=10)
