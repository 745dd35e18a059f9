"""The Slack channel against a fake Slack on loopback (Web API and Socket Mode), with
slack-bolt on our side and the fake model answering."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.channels.fake_slack import BOT_USER, SIGNING_SECRET, FakeSlack, message_event, sign
from tests.channels.helpers import Personae, eventually, make_settings, running
from tests.live_server import live_server


@pytest.fixture
def fake() -> Iterator[tuple[FakeSlack, str]]:
    api = FakeSlack()
    with live_server(api.app) as url:  # type: ignore[arg-type]
        yield api, url


def slack_settings(url: str, **options: Any) -> dict[str, Any]:
    return {
        "kind": "slack",
        "default_character": "aria",
        "token_env": "TEST_SLACK_TOKEN",
        "secret_env": "TEST_SLACK_SIGNING",
        "options": {"base_url": f"{url}/api/", "timeout_s": 2, **options},
    }


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_TOKEN", "xoxb-test")
    monkeypatch.setenv("TEST_SLACK_SIGNING", SIGNING_SECRET)
    monkeypatch.setenv("TEST_SLACK_APP", "xapp-test")


@pytest.fixture
def personae(tmp_path: Path, fake: tuple[FakeSlack, str], env: None) -> Iterator[Personae]:
    with running(make_settings(tmp_path, {"slack": slack_settings(fake[1])})) as server:
        yield server


async def post_event(server: Personae, body: dict[str, Any], **signing: Any) -> httpx.Response:
    raw = json.dumps(body).encode()
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{server.url}/channels/slack", content=raw, headers=sign(raw, **signing)
        )


async def test_url_verification_answers_the_challenge(personae: Personae) -> None:
    answer = await post_event(
        personae, {"type": "url_verification", "challenge": "c-123", "token": "t"}
    )
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "c-123"}


async def test_a_direct_message_gets_a_reply_streamed_by_edits(
    personae: Personae, fake: tuple[FakeSlack, str]
) -> None:
    api, _ = fake
    words = [f" w{i}" for i in range(30)]
    personae.model.enqueue(words, delay_s=0.1)  # 3 s of streaming, 1.5 s between edits
    answer = await post_event(personae, message_event("Hello Aria"))
    assert answer.status_code == 200
    await eventually(lambda: api.texts_in("D1") == ["".join(words).strip()], timeout_s=15)
    methods = [s["method"] for s in api.sent]
    assert methods[0] == "chat.postMessage"
    assert methods.count("chat.postMessage") == 1
    assert 1 <= methods.count("chat.update") <= 4
    assert personae.model.requests[0].messages[-1].content == "Hello Aria"


@pytest.mark.parametrize("signing", [{"secret": "wrong"}, {"at": time.time() - 600}])
async def test_forged_or_stale_events_are_refused(
    personae: Personae, signing: dict[str, Any]
) -> None:
    answer = await post_event(personae, message_event("Let me in"), **signing)
    assert answer.status_code == 401
    await asyncio.sleep(0.3)
    assert personae.model.requests == []


async def test_in_channels_it_answers_mentions_only_without_the_mention(
    personae: Personae, fake: tuple[FakeSlack, str]
) -> None:
    api, _ = fake
    await post_event(personae, message_event("chatting", channel="C1", channel_type="channel"))
    await post_event(
        personae,
        message_event(f"<@{BOT_USER}> status?", channel="C1", channel_type="channel"),
    )
    await eventually(lambda: api.texts_in("C1"))
    assert [m.content for m in personae.model.requests[0].messages][-1] == "status?"
    assert len(personae.model.requests) == 1


async def test_malformed_events_and_bot_messages_are_skipped(
    personae: Personae, fake: tuple[FakeSlack, str]
) -> None:
    api, _ = fake
    broken = message_event("no user")
    del broken["event"]["user"]
    echo = message_event("my own reply")
    echo["event"]["bot_id"] = "BBOT"
    for body in (broken, echo):
        assert (await post_event(personae, body)).status_code == 200
    raw = b"{not json"
    async with httpx.AsyncClient() as client:
        bad = await client.post(f"{personae.url}/channels/slack", content=raw, headers=sign(raw))
    assert bad.status_code == 400
    await post_event(personae, message_event("a real one"))
    await eventually(lambda: api.texts_in("D1"))
    assert len(personae.model.requests) == 1


async def test_429_with_retry_after_delays_the_reply_and_it_arrives_once(
    personae: Personae, fake: tuple[FakeSlack, str]
) -> None:
    api, _ = fake
    api.faults.extend([("chat.postMessage", 429, 1), ("chat.postMessage", 500, 0)])
    personae.model.enqueue("Patience, captain.")
    started = time.monotonic()
    await post_event(personae, message_event("Now?"))
    await eventually(lambda: api.texts_in("D1") == ["Patience, captain."], timeout_s=15)
    assert time.monotonic() - started >= 1.0
    await asyncio.sleep(0.5)
    assert [s["method"] for s in api.sent] == ["chat.postMessage"]


async def test_socket_mode_round_trip_and_reconnect_after_a_dropped_socket(
    tmp_path: Path, fake: tuple[FakeSlack, str], env: None
) -> None:
    api, url = fake
    channel = slack_settings(url, mode="socket", app_token_env="TEST_SLACK_APP")
    del channel["secret_env"]
    with running(make_settings(tmp_path, {"slack": channel})) as server:
        await eventually(lambda: api.sockets == 1)
        server.model.enqueue("Over the socket.")
        first = message_event("Via socket", ts="1700000001.000001")
        api.push_event(first)
        await eventually(lambda: api.texts_in("D1") == ["Over the socket."], timeout_s=10)
        assert api.acks == [f"env-{first['event_id']}"]
        api.envelopes.put("close")  # Slack drops the socket
        await eventually(lambda: api.sockets == 2, timeout_s=10)
        assert api.count("apps.connections.open") == 2
        server.model.enqueue("Still here.")
        api.push_event(message_event("Again", ts="1700000002.000001"))
        await eventually(lambda: "Still here." in api.texts_in("D1"), timeout_s=10)
