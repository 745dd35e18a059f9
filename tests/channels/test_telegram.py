"""The Telegram channel against a fake Bot API server on loopback, with python-telegram-bot
on our side and the fake model answering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from personae.testing import FakeChatModel
from tests.channels.fake_telegram import TOKEN, FakeTelegram
from tests.channels.helpers import Personae, eventually, make_settings, running, serving
from tests.channels.mosquitto import free_port
from tests.live_server import live_server

SAM = 42


@pytest.fixture
def fake() -> Iterator[tuple[FakeTelegram, str]]:
    api = FakeTelegram()
    with live_server(api.app) as url:  # type: ignore[arg-type]
        yield api, url


def telegram_settings(url: str, **options: Any) -> dict[str, Any]:
    return {
        "kind": "telegram",
        "default_character": "aria",
        "token_env": "TEST_TG_TOKEN",
        "options": {"base_url": url, "poll_timeout_s": 1, "timeout_s": 2, **options},
    }


@pytest.fixture
def personae(
    tmp_path: Path, fake: tuple[FakeTelegram, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Personae]:
    monkeypatch.setenv("TEST_TG_TOKEN", TOKEN)
    with running(make_settings(tmp_path, {"tg": telegram_settings(fake[1])})) as server:
        yield server


async def test_a_private_message_gets_a_reply_streamed_by_throttled_edits(
    personae: Personae, fake: tuple[FakeTelegram, str]
) -> None:
    api, _ = fake
    words = [f" word{i}" for i in range(40)]
    personae.model.enqueue(words, delay_s=0.06)  # about 2.4 s of streaming
    api.user_writes("Tell me a long story")
    await eventually(lambda: api.texts_to(SAM) == ["".join(words).strip()], timeout_s=15)
    sends = [s for s in api.sent if s["method"] == "sendMessage"]
    edits = [s for s in api.sent if s["method"] == "editMessageText"]
    assert len(sends) == 1  # one message, edited as tokens arrived
    assert 2 <= len(edits) <= 5  # about one edit per second, never one per token
    assert sends[0]["text"] != "".join(words).strip()  # the first send was a partial preview
    assert sends[0]["reply"]["message_id"] == 1  # it answers the user's message
    assert api.count("sendChatAction") >= 1


async def test_a_reply_longer_than_4096_is_split_at_sentence_ends(
    personae: Personae, fake: tuple[FakeTelegram, str]
) -> None:
    api, _ = fake
    reply = " ".join(f"Chapter {i} begins and ends here." for i in range(400))  # ~13,500
    personae.model.enqueue(reply)
    api.user_writes("Everything, please")
    await eventually(lambda: len(api.texts_to(SAM)) == 4, timeout_s=15)
    parts = api.texts_to(SAM)
    assert all(len(p) <= 4096 and p.endswith("here.") for p in parts)
    assert " ".join(parts) == reply


async def test_429_with_retry_after_and_a_5xx_delay_but_do_not_duplicate(
    personae: Personae, fake: tuple[FakeTelegram, str]
) -> None:
    api, _ = fake
    # The preview's send meets the 429; the final text's first send meets the 500.
    api.faults.extend([("sendMessage", 429, 1), ("sendMessage", 500, 0)])
    personae.model.enqueue("Steady as she goes.")
    started = time.monotonic()
    api.user_writes("Hold course")
    await eventually(lambda: api.texts_to(SAM) == ["Steady as she goes."], timeout_s=15)
    assert time.monotonic() - started >= 1.0
    await asyncio.sleep(0.5)
    assert len([s for s in api.sent if s["method"] == "sendMessage"]) == 1


async def test_a_malformed_update_is_skipped_and_the_next_one_answered(
    personae: Personae, fake: tuple[FakeTelegram, str]
) -> None:
    api, _ = fake
    api.push({"message": {"text": "no chat, no sender, no date"}})
    api.push({"message": "not even an object"})
    api.push({"edited_message": {"weird": True}})
    personae.model.enqueue("Clear skies.")
    api.user_writes("Weather?")
    await eventually(lambda: api.texts_to(SAM) == ["Clear skies."], timeout_s=10)
    assert len(personae.model.requests) == 1
    await eventually(lambda: api.updates == [])  # every update, bad ones too, was confirmed


async def test_a_redelivered_message_makes_no_second_turn(
    personae: Personae, fake: tuple[FakeTelegram, str]
) -> None:
    api, _ = fake
    update = api.user_writes("Only once")
    await eventually(lambda: api.texts_to(SAM))
    api.push({"message": update["message"]})  # the same message in a new update
    await asyncio.sleep(1.0)
    assert len(personae.model.requests) == 1
    assert len(api.texts_to(SAM)) == 1


async def test_in_groups_it_answers_only_when_addressed(
    personae: Personae, fake: tuple[FakeTelegram, str]
) -> None:
    api, _ = fake
    group = -5000
    api.user_writes("just chatting among ourselves", chat=group, group=True)
    api.user_writes("@personae_bot what do you think?", chat=group, group=True)
    await eventually(lambda: len(personae.model.requests) == 1)
    assert personae.model.requests[0].assistant_name == "Aria"
    api.user_writes("Bram, your opinion?", chat=group, group=True)
    await eventually(lambda: len(personae.model.requests) == 2)
    assert personae.model.requests[1].assistant_name == "Bram"
    api.user_writes("and you again", chat=group, group=True, reply_to_bot=100)
    await eventually(lambda: len(personae.model.requests) == 3)
    await asyncio.sleep(0.5)
    assert len(personae.model.requests) == 3


async def test_the_character_command_binds_the_chat(
    personae: Personae, fake: tuple[FakeTelegram, str]
) -> None:
    api, _ = fake
    api.user_writes("/character bram")
    await eventually(lambda: api.texts_to(SAM) == ["Bram answers in this chat now."])
    api.user_writes("Evening")
    await eventually(lambda: personae.model.requests)
    assert personae.model.requests[0].assistant_name == "Bram"
    api.user_writes("/character nobody")
    await eventually(lambda: any("There is no character" in t for t in api.texts_to(SAM)))


async def test_an_outage_is_survived_and_the_queued_reply_arrives_once(
    tmp_path: Path, fake: tuple[FakeTelegram, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram goes away while a reply is generated; a webhook channel of the same server
    keeps answering meanwhile; when Telegram is back the reply arrives, once."""
    from tests.channels.fake_webhook import Receiver

    # The 30 s: long enough for the reconnect attempts of several windows to run out
    # (tests reconnect with 0.05-0.2 s backoff, 10 attempts a second), so the channel goes
    # "down" and cools off in between, and still comes back.
    outage_s = 30.0
    api, url = fake
    monkeypatch.setenv("TEST_TG_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_HOOK_SECRET", "s")
    receiver = Receiver("s")
    with live_server(receiver.app) as hook_url:  # type: ignore[arg-type]
        adapters = {
            "tg": telegram_settings(url),
            "hook": {
                "kind": "webhook",
                "default_character": "aria",
                "secret_env": "TEST_HOOK_SECRET",
                "options": {"url": f"{hook_url}/hook", "allow_private_targets": True},
            },
        }
        model = FakeChatModel(default_reply="Webhook reply.")
        # The outbox retries a reply for as long as a real one would (20 attempts at the
        # default backoff span hours); here its retries are fast, so it gets more of them.
        outbox = {
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
            "max_attempts": 1000,
            "breaker_reset_s": 0.5,
        }
        settings = make_settings(tmp_path, adapters, outbox=outbox)
        with running(settings, model) as server:
            await eventually(lambda: api.count("getUpdates") >= 1)
            model.enqueue("Reply from before the outage.", first_token_delay_s=0.5)
            api.user_writes("Are you there?")
            await eventually(lambda: model.requests)
            api.down = True
            async with httpx.AsyncClient() as client:
                from personae.channels.signing import signed_headers

                body = b'{"user": "w", "text": "ping"}'
                started = time.monotonic()
                pushed = await client.post(
                    f"{server.url}/channels/hook", content=body, headers=signed_headers("s", body)
                )
                assert pushed.status_code == 200
                await eventually(lambda: receiver.texts() == ["Webhook reply."])
                assert time.monotonic() - started < 2.0  # not held up by Telegram
                await asyncio.sleep(outage_s)
                states = (await client.get(f"{server.url}/channels")).json()
                assert states["hook"] == "up"
                assert states["tg"].startswith(("reconnecting", "down"))
                assert api.texts_to(SAM) == []
                api.down = False
                await eventually(
                    lambda: api.texts_to(SAM) == ["Reply from before the outage."], timeout_s=10
                )
                await asyncio.sleep(1.0)
                assert len([s for s in api.sent if s["method"] == "sendMessage"]) == 1
                assert (await client.get(f"{server.url}/channels")).json()["tg"] == "up"


async def test_webhook_mode_registers_the_hook_and_answers_pushed_updates(
    tmp_path: Path, fake: tuple[FakeTelegram, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    api, url = fake
    monkeypatch.setenv("TEST_TG_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_TG_SECRET", "tg-secret")
    channel = telegram_settings(url, mode="webhook", webhook_url="https://bot.example/channels/tg")
    channel["secret_env"] = "TEST_TG_SECRET"
    with running(make_settings(tmp_path, {"tg": channel})) as server:
        await eventually(lambda: api.webhook)
        assert api.webhook["url"] == "https://bot.example/channels/tg"
        assert api.webhook["secret_token"] == "tg-secret"
        update = api.user_writes("Pushed to you")
        api.updates.clear()  # delivered by push, not by polling
        body = json.dumps(update).encode()
        async with httpx.AsyncClient() as client:
            target = f"{server.url}/channels/tg"
            wrong = await client.post(
                target, content=body, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}
            )
            assert wrong.status_code == 401
            headers = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
            bad = await client.post(target, content=b"{not json", headers=headers)
            assert bad.status_code == 400
            good = await client.post(target, content=body, headers=headers)
            assert good.status_code == 200
            assert good.json() == {"accepted": 1}
        await eventually(lambda: api.texts_to(SAM) == ["Hello from the fake model."])
        assert api.count("getUpdates") == 0


async def test_when_the_api_server_vanishes_and_returns_the_channel_reconnects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections refused, not error answers: the fake API is stopped while a reply is being
    generated, then started again on the same port."""
    monkeypatch.setenv("TEST_TG_TOKEN", TOKEN)
    api, port = FakeTelegram(), free_port()
    first = serving(api.app, port)
    url = first.__enter__()
    try:
        with running(make_settings(tmp_path, {"tg": telegram_settings(url)})) as server:
            await eventually(lambda: api.count("getUpdates") >= 1)
            server.model.enqueue("Made it through.", first_token_delay_s=0.5)
            api.user_writes("Still with me?")
            await eventually(lambda: server.model.requests)
            first.__exit__(None, None, None)  # the API is gone: connections are refused
            first = None
            await asyncio.sleep(2.0)
            async with httpx.AsyncClient() as client:
                state = (await client.get(f"{server.url}/channels")).json()["tg"]
            assert state.startswith(("reconnecting", "down"))
            assert api.texts_to(SAM) == []
            with serving(api.app, port):
                await eventually(lambda: api.texts_to(SAM) == ["Made it through."])
                await asyncio.sleep(0.5)
                assert len([s for s in api.sent if s["method"] == "sendMessage"]) == 1
    finally:
        if first is not None:
            first.__exit__(None, None, None)
