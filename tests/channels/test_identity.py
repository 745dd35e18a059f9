"""Identity linking: a Telegram user who redeems a one-time code becomes the WebSocket user
who asked for it, and shares that user's conversations and history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from personae.channels.identity import Identities
from personae.core.channels import hash_link_code
from personae.core.memory.stage import PROFILE_HEADING
from personae.settings import MemorySettings
from personae.storage.sqlite.channel_directory import SqliteChannelDirectory
from tests.channels.fake_telegram import TOKEN, FakeTelegram
from tests.channels.helpers import Personae, eventually, make_settings, running
from tests.channels.test_telegram import telegram_settings
from tests.live_server import live_server
from tests.transports.ws_client import WsClient

SAM_ON_TELEGRAM = 42


@pytest.fixture
def fake() -> Iterator[tuple[FakeTelegram, str]]:
    api = FakeTelegram()
    with live_server(api.app) as url:  # type: ignore[arg-type]
        yield api, url


def start(tmp_path: Path, url: str, scope: str) -> Any:
    return running(
        make_settings(tmp_path, {"tg": telegram_settings(url)}, conversation_scope=scope)
    )


async def link_code(server: Personae, user: str) -> str:
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{server.url}/api/channels/link-code", params={"user": user})
    assert answer.status_code == 200
    assert answer.json()["user"] == user
    return str(answer.json()["code"])


async def test_a_linked_telegram_user_continues_the_websocket_users_conversation(
    tmp_path: Path, fake: tuple[FakeTelegram, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, url = fake
    monkeypatch.setenv("TEST_TG_TOKEN", TOKEN)
    with start(tmp_path, url, "shared") as server:
        ws, _ = await WsClient.open(server.url, user="sam")
        server.model.enqueue("A fine name for a ship.")
        sent = await ws.request(
            "message.send", {"character": "aria", "text": "My ship is the Nautilus."}
        )
        conversation = sent["result"]["conversation"]
        await ws.events_until("message.done", conversation=conversation)

        code = await link_code(server, "sam")
        api.user_writes(f"/link {code}")
        await eventually(lambda: any("Linked" in t for t in api.texts_to(SAM_ON_TELEGRAM)))

        server.model.enqueue("Your ship is the Nautilus, captain.")
        api.user_writes("What is my ship called?")
        # The WebSocket device sees the Telegram turn: it is the same conversation.
        frames = await ws.events_until("message.done", conversation=conversation)
        assert frames[0]["payload"]["message"]["content"] == "What is my ship called?"
        prompt = [m.content for m in server.model.requests[-1].messages]
        assert "My ship is the Nautilus." in prompt  # the history followed the person
        await eventually(
            lambda: "Your ship is the Nautilus, captain." in api.texts_to(SAM_ON_TELEGRAM)
        )
        await ws.close()

        api.user_writes(f"/link {code}")  # a code works once
        await eventually(
            lambda: any("unknown or has expired" in t for t in api.texts_to(SAM_ON_TELEGRAM))
        )
        api.user_writes("Hello from a stranger", user=77)
        await eventually(lambda: len(server.model.requests) == 3)
        stranger = [m.content for m in server.model.requests[-1].messages]
        assert "My ship is the Nautilus." not in stranger


async def test_with_chat_scope_the_linked_user_gets_a_conversation_per_chat(
    tmp_path: Path, fake: tuple[FakeTelegram, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, url = fake
    monkeypatch.setenv("TEST_TG_TOKEN", TOKEN)
    with start(tmp_path, url, "chat") as server:
        code = await link_code(server, "sam")
        api.user_writes(f"/link {code}")
        await eventually(lambda: api.texts_to(SAM_ON_TELEGRAM))
        for text in ("First", "Second"):
            api.user_writes(text)
            await eventually(
                lambda n=text: (
                    server.model.requests
                    and any(m.content == n for m in server.model.requests[-1].messages)
                )
            )
        api.user_writes("/new")
        await eventually(lambda: "Starting a new conversation." in api.texts_to(SAM_ON_TELEGRAM))
        api.user_writes("Third")
        await eventually(lambda: len(server.model.requests) == 3)
        async with httpx.AsyncClient() as client:
            found = await client.get(f"{server.url}/api/conversations", params={"user": "sam"})
        conversations = found.json()
        assert len(conversations) == 2  # First+Second in one, Third in the one /new began
        assert all(c["character_id"] == "aria" for c in conversations)


async def test_link_codes_expire_and_only_their_hash_is_stored(tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with SqliteChannelDirectory(tmp_path / "db.sqlite3") as directory:
        identities = Identities(directory, code_ttl_s=60, now=lambda: now)
        code, expires_at = await identities.issue_code("sam")
        assert expires_at == now + timedelta(seconds=60)
        stored = await directory._db.run(
            "read codes",
            lambda c: [r[0] for r in c.execute("SELECT code_hash FROM channel_link_codes")],
        )
        assert stored == [hash_link_code(code)]
        assert code not in stored
        now += timedelta(seconds=61)
        assert await identities.redeem("tg", "42", code) is None
        assert await identities.user_for("tg", "42") == "tg:42"
        fresh, _ = await identities.issue_code("sam")
        assert await identities.redeem("tg", "42", fresh.lower()) == "sam"  # typed loosely
        assert await identities.user_for("tg", "42") == "sam"


async def test_long_term_memory_follows_the_linked_user_into_another_conversation(
    tmp_path: Path, fake: tuple[FakeTelegram, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the user told the character over the WebSocket is in the prompt of a Telegram
    chat that is its own conversation: the memory is the person's, not the channel's."""
    api, url = fake
    monkeypatch.setenv("TEST_TG_TOKEN", TOKEN)
    settings = make_settings(tmp_path, {"tg": telegram_settings(url)}, conversation_scope="chat")
    settings = settings.model_copy(update={"memory": MemorySettings(enabled=True, embedder="none")})
    with running(settings) as server:
        ws, _ = await WsClient.open(server.url, user="sam")
        sent = await ws.request(
            "message.send", {"character": "aria", "text": "My name is Samuel Okafor."}
        )
        await ws.events_until("message.done", conversation=sent["result"]["conversation"])
        await ws.close()

        code = await link_code(server, "sam")
        api.user_writes(f"/link {code}")
        await eventually(lambda: any("Linked" in t for t in api.texts_to(SAM_ON_TELEGRAM)))
        api.user_writes("Do you remember me?")
        await eventually(lambda: len(server.model.requests) == 2)
        system = " ".join(
            m.content for m in server.model.requests[-1].messages if m.role == "system"
        )
        assert PROFILE_HEADING in system
        assert "Samuel Okafor" in system
        async with httpx.AsyncClient() as client:
            found = await client.get(f"{server.url}/api/conversations", params={"user": "sam"})
        assert len(found.json()) == 2  # the Telegram chat is a conversation of its own
