"""A reply owed when the server stops is delivered after it starts again: the turn's end is
read back from the event log, and the outbox keeps what was not sent."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from personae.channels.signing import signed_headers
from tests.channels.fake_webhook import Receiver
from tests.channels.helpers import eventually, make_settings, running
from tests.live_server import live_server


async def test_a_turn_cut_by_a_restart_is_answered_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", "s")
    receiver = Receiver("s")
    with live_server(receiver.app) as hook_url:  # type: ignore[arg-type]
        adapters = {
            "hook": {
                "kind": "webhook",
                "default_character": "aria",
                "secret_env": "TEST_HOOK_SECRET",
                "options": {"url": f"{hook_url}/hook", "allow_private_targets": True},
            }
        }
        settings = make_settings(tmp_path, adapters)
        settings = settings.model_copy(
            update={"realtime": settings.realtime.model_copy(update={"shutdown_grace_s": 0})}
        )
        with running(settings) as server:
            server.model.enqueue("Too slow to finish.", first_token_delay_s=5)
            body = json.dumps({"user": "u1", "text": "Long question", "id": "q1"}).encode()
            async with httpx.AsyncClient() as client:
                await client.post(
                    f"{server.url}/channels/hook", content=body, headers=signed_headers("s", body)
                )
            await eventually(lambda: server.model.requests)
        assert receiver.received == []  # stopped mid-turn: nothing was sent yet
        with running(settings):
            await eventually(lambda: receiver.received)
        assert [(r["text"], r["reply_to"]) for r in receiver.received] == [
            ("(The reply was interrupted; please send your message again.)", "q1")
        ]
