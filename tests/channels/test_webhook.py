"""The signed webhook channel end to end: a live Personae, a live receiver on loopback, the
fake model answering."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from personae.app import build_app
from personae.channels.signing import signature, signed_headers
from personae.errors import ConfigurationError
from personae.testing import FakeChatModel
from tests.channels.fake_webhook import Receiver
from tests.channels.helpers import Personae, eventually, make_settings, running
from tests.live_server import live_server

SECRET = "webhook-secret-for-tests"


def hook_settings(tmp_path: Path, receiver_url: str, **options: Any) -> dict[str, Any]:
    return {
        "kind": "webhook",
        "default_character": "aria",
        "secret_env": "TEST_HOOK_SECRET",
        "options": {"url": f"{receiver_url}/hook", "allow_private_targets": True, **options},
    }


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    fake = Receiver(SECRET)
    with live_server(fake.app) as url:  # type: ignore[arg-type]
        yield fake, url


@pytest.fixture
def personae(
    tmp_path: Path, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Personae]:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    settings = make_settings(tmp_path, {"hook": hook_settings(tmp_path, receiver[1])})
    with running(settings) as server:
        yield server


def payload(text: str, *, user: str = "dev-1", message_id: str = "m1", **extra: Any) -> bytes:
    return json.dumps({"user": user, "text": text, "id": message_id, **extra}).encode()


async def push(server: Personae, body: bytes, headers: dict[str, str] | None = None) -> Any:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{server.url}/channels/hook",
            content=body,
            headers=signed_headers(SECRET, body) if headers is None else headers,
        )


async def test_a_signed_message_gets_the_characters_reply_signed(
    personae: Personae, receiver: tuple[Receiver, str]
) -> None:
    fake, _ = receiver
    personae.model.enqueue("All systems green, captain.")
    answer = await push(personae, payload("Status report?"))
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 1}
    await eventually(lambda: fake.received)
    reply = fake.received[0]
    assert reply["text"] == "All systems green, captain."
    assert reply["chat"] == "dev-1"
    assert reply["reply_to"] == "m1"
    assert reply["channel"] == "hook"
    assert fake.bad_signatures == 0  # the receiver checked our HMAC with its own code
    assert personae.model.requests[0].messages[-1].content == "Status report?"


async def test_the_signature_covers_timestamp_and_body() -> None:
    # Pinned by hand, so the wire format cannot drift: sha256 HMAC of "<ts>." + body.
    import hashlib
    import hmac

    body = b'{"user":"u","text":"hi"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("k", 1_700_000_000, body) == f"sha256={expected}"


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "not signed"),
        ({"X-Personae-Timestamp": "now", "X-Personae-Signature": "sha256=00"}, "not a number"),
        ("wrong-secret", "does not match"),
        ("stale", "replay window"),
    ],
)
async def test_unsigned_forged_or_stale_requests_are_refused_and_start_nothing(
    personae: Personae, headers: Any, reason: str
) -> None:
    body = payload("Open the airlock.")
    if headers == "wrong-secret":
        headers = signed_headers("not-the-secret", body)
    elif headers == "stale":
        headers = signed_headers(SECRET, body, now=time.time() - 301)
    answer = await push(personae, body, headers)
    assert answer.status_code == 401
    assert reason in answer.json()["error"]["message"]
    assert personae.model.requests == []


async def test_a_replayed_request_is_refused(
    personae: Personae, receiver: tuple[Receiver, str]
) -> None:
    body = payload("Once only.")
    headers = signed_headers(SECRET, body)
    assert (await push(personae, body, headers)).status_code == 200
    again = await push(personae, body, headers)
    assert again.status_code == 401
    assert "replay" in again.json()["error"]["message"]
    await eventually(lambda: receiver[0].received)
    await asyncio.sleep(0.2)
    assert len(receiver[0].received) == 1


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"user": "u"}', "'text'"),
        (b'{"user": "u", "text": "hi", "chat": 5}', "'chat'"),
        (b'{"user": "u", "text": "hi", "attachments": "x"}', "attachments"),
    ],
)
async def test_malformed_bodies_are_refused_with_a_clear_error(
    personae: Personae, body: bytes, complaint: str
) -> None:
    answer = await push(personae, body)
    assert answer.status_code == 400
    assert complaint in answer.json()["error"]["message"]
    assert personae.model.requests == []


async def test_an_unknown_channel_is_404(personae: Personae) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{personae.url}/channels/nope", content=b"{}")
    assert answer.status_code == 404


async def test_429_and_5xx_are_retried_and_the_reply_arrives_once(
    personae: Personae, receiver: tuple[Receiver, str]
) -> None:
    fake, _ = receiver
    fake.faults.extend([429, 500, 502])
    personae.model.enqueue("Persistence pays.")
    started = time.monotonic()
    await push(personae, payload("Try again?"))
    await eventually(lambda: fake.received)
    assert time.monotonic() - started >= 0.3  # Retry-After was honoured
    await asyncio.sleep(0.3)
    assert fake.texts() == ["Persistence pays."]
    assert fake.attempts == 4


async def test_a_receiver_outage_delays_replies_and_loses_none(
    personae: Personae, receiver: tuple[Receiver, str]
) -> None:
    fake, _ = receiver
    fake.down = True
    for n in range(3):
        personae.model.enqueue(f"Reply {n}.")
        await push(personae, payload(f"Message {n}", message_id=f"m{n}", user=f"dev-{n}"))
    await eventually(lambda: fake.attempts >= 6)  # it kept trying while the receiver was down
    assert fake.received == []
    fake.down = False
    await eventually(lambda: len(fake.received) == 3)
    await asyncio.sleep(0.5)
    assert sorted(fake.texts()) == ["Reply 0.", "Reply 1.", "Reply 2."]


async def test_a_refusing_receiver_is_given_up_on_without_retrying_forever(
    personae: Personae, receiver: tuple[Receiver, str]
) -> None:
    fake, _ = receiver
    fake.faults.append(400)
    await push(personae, payload("First", message_id="a"))
    await eventually(lambda: fake.attempts == 1)
    personae.model.enqueue("Second reply.")
    await push(personae, payload("Second", message_id="b"))
    await eventually(lambda: fake.received)
    assert fake.texts() == ["Second reply."]
    assert fake.attempts == 2


async def test_a_private_target_is_refused_at_start_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", SECRET)
    adapters = {"hook": hook_settings(tmp_path, "http://127.0.0.1:9")}
    adapters["hook"]["options"]["allow_private_targets"] = False
    app = build_app(make_settings(tmp_path, adapters), backends={"fake": FakeChatModel()})
    with pytest.raises(ConfigurationError, match="private or loopback"):
        async with app.router.lifespan_context(app):
            pass


async def test_a_missing_secret_variable_is_a_configuration_error(tmp_path: Path) -> None:
    adapters = {"hook": hook_settings(tmp_path, "http://127.0.0.1:9")}
    app = build_app(make_settings(tmp_path, adapters), backends={"fake": FakeChatModel()})
    with pytest.raises(ConfigurationError, match="TEST_HOOK_SECRET"):
        async with app.router.lifespan_context(app):
            pass
