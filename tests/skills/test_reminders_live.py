"""Reminders on a live server: one set before a stop and due while the server was down fires
once after it starts again (seen by a WebSocket watching the conversation), and one set from
a chat platform comes back to that chat through the channel's outbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from personae.app import build_app
from personae.channels.signing import signed_headers
from personae.settings import Settings
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.reminders import SqliteReminderStore
from personae.testing import FakeChatModel
from tests.channels.fake_webhook import Receiver
from tests.channels.helpers import eventually
from tests.live_server import live_server
from tests.transports.ws_client import WsClient

MIA = """
id: mia
name: Mia
greeting: Hi, I am Mia.
skills: [reminders, memory]
"""
REMINDER = "⏰ Reminder: stretch"


def make_settings(tmp_path: Path, **extra: Any) -> Settings:
    characters = tmp_path / "characters"
    characters.mkdir(exist_ok=True)
    (characters / "mia.yaml").write_text(MIA, encoding="utf-8")
    return Settings(
        data_dir=tmp_path / "data",
        characters_dir=characters,
        watch_characters=False,
        skills={"reminders": {"poll_interval_s": 0.1}},  # type: ignore[arg-type]
        **extra,
    )


async def reminder_messages(settings: Settings, conversation: str) -> list[str]:
    async with SqliteConversationStore(settings.database_path) as store:
        messages = await store.list_messages(conversation, limit=100)
    return [m.content for m in messages if m.content == REMINDER]


async def test_a_reminder_due_while_the_server_was_down_fires_once_after_it(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        client, _ = await WsClient.open(url, user="sam")
        sent = await client.request(
            "message.send", {"character": "mia", "text": "/remind 4s stretch"}
        )
        conversation = sent["result"]["conversation"]
        frames = await client.events_until("message.done", conversation=conversation)
        assert frames[-1]["payload"]["message"]["content"].startswith(
            "OK, I will remind you to stretch"
        )
        seen = frames[-1]["seq"]
        await client.close()
    async with SqliteReminderStore(settings.database_path) as reminders:
        (pending,) = await reminders.pending("sam")  # the server stopped before it was due
    assert await reminder_messages(settings, conversation) == []
    await asyncio.sleep(max(0.0, (pending.due_at - pending.created_at).total_seconds()) + 0.2)

    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        client, _ = await WsClient.open(url, user="sam")
        await client.request(
            "conversation.subscribe", {"conversation": conversation, "after_seq": seen}
        )
        (done,) = await client.events_until("message.done", conversation=conversation)
        assert done["payload"]["reply_to"] is None
        assert done["payload"]["finish_reason"] == "reminder"
        assert done["payload"]["message"]["content"] == REMINDER
        await asyncio.sleep(0.5)  # several polls: nothing more comes
        await client.close()
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})):
        await asyncio.sleep(0.5)  # and a third start delivers nothing again
    assert await reminder_messages(settings, conversation) == [REMINDER]
    async with SqliteReminderStore(settings.database_path) as reminders:
        assert await reminders.pending("sam") == []


async def test_a_reminder_set_in_a_chat_arrives_in_that_chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", "s")
    receiver = Receiver("s")
    with live_server(receiver.app) as hook_url:  # type: ignore[arg-type]
        hook = {
            "kind": "webhook",
            "default_character": "mia",
            "secret_env": "TEST_HOOK_SECRET",
            "options": {"url": f"{hook_url}/hook", "allow_private_targets": True},
        }
        settings = make_settings(tmp_path, channels={"adapters": {"hook": hook}})
        with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
            body = json.dumps({"user": "u1", "text": "/remind 1s stretch", "id": "q1"}).encode()
            async with httpx.AsyncClient() as http:
                pushed = await http.post(
                    f"{url}/channels/hook", content=body, headers=signed_headers("s", body)
                )
            assert pushed.status_code == 200
            await eventually(lambda: len(receiver.received) >= 2)
            await asyncio.sleep(0.3)  # nothing else follows
    texts = receiver.texts()
    assert texts[0].startswith("OK, I will remind you to stretch")
    assert texts[1:] == [REMINDER]
