"""Moderation and PII end to end over the HTTP API (and WebSocket), with an OpenAI-compatible
loopback: the backend never sees the planted PII; the user and the store see the originals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from personae.app import build_app
from personae.core.pii import Redactor
from personae.core.safety import ContentPolicy
from personae.llm.guard import GuardedBackend
from personae.llm.router import RoutedChatModel
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.sqlite_snapshot import sqlite_snapshot
from tests.transports.conftest import make_settings
from tests.transports.ws_client import WsClient

from .fake_openai_server import FakeOpenAIServer, Reply

PLANTED = {
    "email": "ann.lee@example.org",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ip": "192.168.7.42",
}
MESSAGE = (
    f"I am Ann, mail me at {PLANTED['email']} or call {PLANTED['phone']}. My card is "
    f"{PLANTED['card']}, my IBAN {PLANTED['iban']}, my router {PLANTED['ip']}."
)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def app_settings(tmp_path: Path, upstream: FakeOpenAIServer, **moderation: Any) -> Settings:
    return make_settings(
        tmp_path,
        llm={"base_url": upstream.base_url, "model": "m"},
        moderation={"blocked_words": {"block": ["kill switch"], "mask": ["darn"]}, **moderation},
    )


def ask(url: str, text: str, *, stream: bool) -> str:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        messages: Any = [{"role": "user", "content": text}]
        if not stream:
            reply = client.chat.completions.create(model="aria", user="ann", messages=messages)
            return reply.choices[0].message.content or ""
        chunks = client.chat.completions.create(
            model="aria", user="ann", messages=messages, stream=True
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def stored_texts(settings: Settings) -> list[str]:
    rows = sqlite_snapshot(settings.database_path)["messages"]
    return [json.dumps(row) for row in rows]


@pytest.mark.parametrize("stream", [False, True])
def test_pii_never_reaches_the_backend_and_comes_back_restored(
    tmp_path: Path, upstream: FakeOpenAIServer, stream: bool
) -> None:
    # The backend answers with the tokens it saw, split across chunks, and a masked word.
    upstream.enqueue(Reply(["Darn, I will mail [EMA", "IL_1] and call [PHONE", "_1] today."]))
    upstream.enqueue(Reply(["Your card [CARD_1] is noted."]))
    settings = app_settings(tmp_path, upstream)

    with live_server(build_app(settings)) as url:
        first = ask(url, MESSAGE, stream=stream)
        second = ask(url, "Thanks! Which card was it?", stream=stream)

    assert first == f"****, I will mail {PLANTED['email']} and call {PLANTED['phone']} today."
    assert second == f"Your card {PLANTED['card']} is noted."
    sent = json.dumps([r["body"]["messages"] for r in upstream.requests])
    for value in PLANTED.values():
        assert value not in sent
    for token in ("[EMAIL_1]", "[PHONE_1]", "[CARD_1]", "[IBAN_1]", "[IP_1]"):
        assert token in sent
    # The second turn's prompt carries the first turn's history, redacted again.
    history = json.dumps(upstream.requests[1]["body"]["messages"])
    assert "[EMAIL_1]" in history
    assert PLANTED["email"] not in history
    stored = "\n".join(stored_texts(settings))
    assert json.dumps(MESSAGE)[1:-1] in stored
    assert PLANTED["email"] in stored
    assert "[EMAIL_1]" not in stored


def test_redaction_can_be_turned_off(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    upstream.enqueue(Reply(["ok"]))
    settings = app_settings(tmp_path, upstream, pii={"enabled": False})
    with live_server(build_app(settings)) as url:
        assert ask(url, MESSAGE, stream=False) == "ok"
    assert PLANTED["email"] in json.dumps(upstream.requests[0]["body"]["messages"])


@pytest.mark.parametrize("stream", [False, True])
def test_blocked_input_is_a_400_and_leaves_the_store_unchanged(
    tmp_path: Path, upstream: FakeOpenAIServer, stream: bool
) -> None:
    upstream.enqueue(Reply(["first"]))
    settings = app_settings(tmp_path, upstream)
    with live_server(build_app(settings)) as url:
        assert ask(url, "hello", stream=False) == "first"
        before = sqlite_snapshot(settings.database_path)
        with pytest.raises(openai.BadRequestError) as caught:
            ask(url, "where is the KILL SWITCH?", stream=stream)
    assert caught.value.status_code == 400
    assert caught.value.code == "content_blocked"
    assert sqlite_snapshot(settings.database_path) == before
    assert len(upstream.requests) == 1


def test_only_in_process_backends_are_exempt() -> None:
    policy = ContentPolicy(redactor=Redactor())
    local, remote = FakeChatModel(name="local"), FakeChatModel(name="remote")
    local.remote = False
    assert policy.redacts_for(remote)
    assert not policy.redacts_for(local)
    assert ContentPolicy(redactor=Redactor(), exempt_local=False).redacts_for(local)
    assert not ContentPolicy().redacts_for(remote)  # no redactor configured
    assert not RoutedChatModel([GuardedBackend(local)]).remote
    assert RoutedChatModel([GuardedBackend(local), GuardedBackend(remote)]).remote


def test_stored_history_can_keep_the_tokens(tmp_path: Path, upstream: FakeOpenAIServer) -> None:
    upstream.enqueue(Reply(["Noted, [EMAIL_1]."]))
    settings = app_settings(tmp_path, upstream, pii={"store_originals": False})
    with live_server(build_app(settings)) as url:
        assert ask(url, MESSAGE, stream=True) == f"Noted, {PLANTED['email']}."
    stored = "\n".join(stored_texts(settings))
    assert "Noted, [EMAIL_1]." in stored
    for value in PLANTED.values():
        assert value not in stored


def test_masked_input_is_masked_for_the_backend_and_the_store(
    tmp_path: Path, upstream: FakeOpenAIServer
) -> None:
    upstream.enqueue(Reply(["ok"]))
    settings = app_settings(tmp_path, upstream)
    with live_server(build_app(settings)) as url:
        assert ask(url, "Darn this weather", stream=False) == "ok"
    assert "**** this weather" in json.dumps(upstream.requests[0]["body"]["messages"])
    stored = "\n".join(stored_texts(settings))
    assert "**** this weather" in stored
    assert "Darn" not in stored


async def test_blocked_input_over_websocket_is_an_error_and_stores_nothing(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, moderation={"blocked_words": {"block": ["kill switch"]}})
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        client, _ = await WsClient.open(url, user="ann", device_id="phone")
        refused = await client.request(
            "message.send", {"character": "aria", "text": "the Kill Switch, now"}
        )
        await client.close()
    assert refused["error"]["code"] == "content_blocked"
    assert not sqlite_snapshot(settings.database_path).get("messages")
