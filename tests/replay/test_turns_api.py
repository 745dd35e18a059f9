"""The admin API over a real server: ``GET /api/admin/turns/{id}`` answers with the record,
``POST /api/admin/replays`` with the report (JSON or HTML); both are admin-only, audited, and
bad requests get clear errors and change nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlean

from personae.app import build_app
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.replay.helpers import ADMIN_KEY, replay_settings
from tests.sqlite_snapshot import sqlite_snapshot


@dataclass
class Server:
    url: str
    db: Path
    user_key: str = ""

    def call(self, method: str, path: str, key: str = ADMIN_KEY, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlean.connect(str(self.db))
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    settings = replay_settings(tmp_path, api_keys=[ADMIN_KEY])
    a = FakeChatModel(name="a", default_reply="From a.")
    b = FakeChatModel(name="b", default_reply="From b.")
    with live_server(build_app(settings, backends={"a": a, "b": b})) as url:
        s = Server(url, settings.database_path)
        issued = s.call("POST", "/api/admin/keys", json={"role": "user", "subject": "sam"})
        assert issued.status_code == 201, issued.text
        s.user_key = issued.json()["token"]
        for text in ("Hello there.", "How is the harbour?"):
            body = {"model": "vera", "messages": [{"role": "user", "content": text}]}
            answer = s.call("POST", "/v1/chat/completions", s.user_key, json=body)
            assert answer.status_code == 200, answer.text
        # Records are written off the turn's path: wait for both to land.
        deadline = time.monotonic() + 10
        while s.rows("SELECT COUNT(*) FROM turn_records") != [(2,)]:
            assert time.monotonic() < deadline, "the turn records were not written"
            time.sleep(0.02)
        yield s


def test_a_recorded_turn_over_http(server: Server) -> None:
    [(turn_id, conversation_id)] = server.rows(
        "SELECT r.turn_id, r.conversation_id FROM turn_records r JOIN messages m"
        " ON m.id = r.turn_id ORDER BY m.seq DESC LIMIT 1"
    )
    answer = server.call("GET", f"/api/admin/turns/{turn_id}")
    assert answer.status_code == 200, answer.text
    record = answer.json()
    assert record["conversation_id"] == conversation_id
    assert record["lore"] == ["harbour"]
    last = record["prompt"][-1]
    assert (last["role"], last["content"]) == ("user", "How is the harbour?")
    assert record["routes"][0]["backend"] == "a"
    assert {s["name"] for s in record["stages"]} >= {"open", "prompt", "generate"}
    audited = server.rows("SELECT action, target FROM audit_log WHERE action = 'turn.read'")
    assert audited == [("turn.read", turn_id)]

    missing = server.call("GET", "/api/admin/turns/msg_nope")
    assert missing.status_code == 404
    assert "only a sample of turns is recorded" in missing.text
    assert server.call("GET", f"/api/admin/turns/{turn_id}", server.user_key).status_code == 403


def test_a_replay_over_http(server: Server) -> None:
    [(conversation_id,)] = server.rows("SELECT DISTINCT conversation_id FROM turn_records")
    before = sqlite_snapshot(server.db)
    body = {"conversation_id": conversation_id, "route": ["b"], "params": {"temperature": 0.2}}
    answer = server.call("POST", "/api/admin/replays", json=body)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["changes"] == "route b, temperature=0.2"
    assert [t["replayed"]["reply"] for t in report["turns"]] == ["From b.", "From b."]
    assert [t["original"]["reply"] for t in report["turns"]] == ["From a.", "From a."]
    assert report["totals"]["turns"] == 2
    assert report["totals"]["changed_replies"] == 2

    page = server.call("POST", "/api/admin/replays", params={"format": "html"}, json=body)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "From b." in page.text
    assert "<table>" in page.text
    assert sqlite_snapshot(server.db) == before  # audit rows aside, nothing was written
    actions = server.rows("SELECT action FROM audit_log WHERE action = 'replay.run'")
    assert len(actions) == 2


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"conversation_id": "conv_nope", "route": ["b"]}, 404, "conv_nope"),
        ({"conversation_id": "CONV"}, 400, "a replay changes something"),
        ({"conversation_id": "CONV", "route": ["zzz"]}, 400, "unknown backend"),
        ({"conversation_id": "CONV", "params": {"temprature": 1}}, 400, "unknown parameter"),
        ({"conversation_id": "CONV", "params": {"temperature": 9}}, 400, "temperature"),
        ({"conversation_id": "CONV", "variant": "nope"}, 400, "EXPERIMENT:VARIANT"),
        ({"conversation_id": "CONV", "variant": "exp:b"}, 400, "no experiment 'exp'"),
        ({"conversation_id": "CONV", "colour": "red"}, 400, "colour"),
    ],
)
def test_bad_replays_are_clear_errors(
    server: Server, body: dict[str, Any], status: int, words: str
) -> None:
    [(conversation_id,)] = server.rows("SELECT DISTINCT conversation_id FROM turn_records")
    if body["conversation_id"] == "CONV":
        body = {**body, "conversation_id": conversation_id}
    before = sqlite_snapshot(server.db)
    answer = server.call("POST", "/api/admin/replays", json=body)
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert sqlite_snapshot(server.db) == before
    user = server.call("POST", "/api/admin/replays", server.user_key, json=body)
    assert user.status_code == 403
