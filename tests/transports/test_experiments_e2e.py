"""Acceptance #10.2 on a live server: aria's new version released to 50 %, turns from many
users through the real ``openai`` client and the WebSocket, each reply written by the version
of its user's variant, feedback given over HTTP and over the WebSocket, and the report showing
both variants with their numbers. Then: another process computes the same variant for every
user from the stored experiment (sticky across processes), and a restarted server keeps them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import openai
import sqlean

from personae.core.experiments.assignment import assign
from personae.core.experiments.spec import parse_experiment
from tests.transports.test_experiments_api import ADMIN_KEY, NEW_HASH, OLD_HASH, Lab, lab
from tests.transports.ws_client import WsClient

HTTP_USERS = [f"http-{i}" for i in range(60)]
WS_USERS = [f"ws-{i}" for i in range(40)]


async def http_turn(d: Lab, client: openai.AsyncOpenAI, user: str) -> dict[str, Any]:
    raw = await client.chat.completions.with_raw_response.create(
        model="aria", messages=[{"role": "user", "content": f"hello from {user}"}], user=user
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    conversation = raw.headers["X-Personae-Conversation"]
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        answer = await http.get(f"{d.url}/api/conversations/{conversation}/messages?user={user}")
    answer.raise_for_status()
    found = answer.json()
    rows = found["messages"] if isinstance(found, dict) else found
    reply: dict[str, Any] = rows[-1]
    assert reply["role"] == "assistant"
    return reply


async def ws_turn(d: Lab, user: str, **connect: Any) -> tuple[WsClient, dict[str, Any]]:
    client, hello = await WsClient.open(d.url, token=ADMIN_KEY, user=user, **connect)
    assert hello["ok"], hello
    sent = await client.request("message.send", {"character": "aria", "text": "hi there"})
    assert sent["ok"], sent
    events = await client.events_until("message.done", conversation=sent["result"]["conversation"])
    message: dict[str, Any] = events[-1]["payload"]["message"]
    return client, message


ANOTHER_PROCESS = """
import json, sys, sqlite3
from personae.core.experiments.live import LiveExperiments
from personae.core.experiments.spec import parse_experiment
from personae.core.types import InboundMessage
db = sqlite3.connect(sys.argv[1])
row = db.execute("SELECT spec FROM experiments").fetchone()
db.close()
live = LiveExperiments([parse_experiment(json.loads(row[0]))])
chosen = {}
for user in json.loads(sys.argv[2]):
    tag = live.assign(InboundMessage(user=user, character_id="aria", text="x")).experiment
    chosen[user] = tag.variant
print(json.dumps(chosen))
"""


def variants_here_and_elsewhere(
    database: Path, users: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The variants the server recorded for ``users``, and those a new process computes."""
    with closing(sqlean.connect(str(database))) as db:
        rows = db.execute("SELECT user_id, variant FROM experiment_turns").fetchall()
    recorded = {user: variant for user, variant in rows if user in users}
    there = subprocess.run(
        [sys.executable, "-c", ANOTHER_PROCESS, str(database), json.dumps(users)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return recorded, json.loads(there)


async def test_a_release_at_50_percent_end_to_end(tmp_path: Path) -> None:
    with lab(tmp_path) as d:
        spec = d.release(version=NEW_HASH[:12], percent=50)
        experiment = parse_experiment(spec)

        def version_for(user: str) -> str:
            return NEW_HASH if assign(experiment, user).variant == "new" else OLD_HASH

        rated: dict[str, list[int]] = {"control": [], "new": []}
        client = openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key=ADMIN_KEY, max_retries=0)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
            for i, user in enumerate(HTTP_USERS):
                reply = await http_turn(d, client, user)
                assert reply["character_version"] == version_for(user), user
                if i % 3 == 0:  # a third of them rate the reply over HTTP
                    value = "up" if i % 2 == 0 else "down"
                    answer = await http.post(
                        f"{d.url}/api/messages/{reply['id']}/feedback?user={user}",
                        json={"value": value},
                    )
                    assert answer.status_code == 200, answer.text
                    rated[assign(experiment, user).variant].append(1 if value == "up" else -1)
        await client.close()

        for i, user in enumerate(WS_USERS):
            ws, message = await ws_turn(d, user)
            assert message["character_version"] == version_for(user), user
            if i % 2 == 0:  # half of them rate it over the WebSocket
                params = {"message_id": message["id"], "value": "up"}
                answer = await ws.request("message.feedback", params)
                assert answer["ok"], answer
                again = await ws.request("message.feedback", params)  # idempotent
                assert again["ok"], again
                rated[assign(experiment, user).variant].append(1)
            await ws.close()

        # Colouring over the WebSocket: an admin's connect frame forces; a user's is ignored.
        in_control = next(u for u in WS_USERS if assign(experiment, u).variant == "control")
        ws, message = await ws_turn(d, in_control, variant="new")
        assert message["character_version"] == NEW_HASH
        refused = await ws.request("message.feedback", {"message_id": "msg_nope", "value": "up"})
        assert refused["error"]["code"] == "not_found"
        await ws.close()
        d.issue("tester")
        tester, hello = await WsClient.open(d.url, token=d.keys["tester"], variant="new")
        assert hello["ok"], hello
        sent = await tester.request("message.send", {"character": "aria", "text": "hi"})
        events = await tester.events_until(
            "message.done", conversation=sent["result"]["conversation"]
        )
        tester_version = events[-1]["payload"]["message"]["character_version"]
        assert tester_version == version_for("tester")  # by the hash, not by the frame
        await tester.close()

        report = d.report()
        users = HTTP_USERS + WS_USERS
        expected_new = sum(1 for u in users if assign(experiment, u).variant == "new")
        assert 35 <= expected_new <= 65  # near 50/50 for 100 users
        new, control = report["new"], report["control"]
        # The tester's turn is in its hashed variant; the admin-forced one in "new".
        tester_variant = assign(experiment, "tester").variant
        assert new["users"] == expected_new + (tester_variant == "new") + 1
        assert control["users"] == len(users) - expected_new + (tester_variant == "control")
        assert new["turns"] + control["turns"] == len(users) + 2
        for row in (new, control):
            assert row["percent"] == (50.0 if row is new else None)
            assert (
                0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p90"] <= row["latency_ms"]["p99"]
            )
            assert row["error_rate"]["rate"] == 0.0
            assert row["error_rate"]["high"] > 0.0  # Wilson: zero errors is not certainty
            assert row["tokens_per_turn"] > 0
            variant = "new" if row is new else "control"
            assert row["feedback_given"] == len(rated[variant])
            ups = sum(1 for v in rated[variant] if v > 0)
            assert row["thumbs_up"]["rate"] == ups / len(rated[variant])
            low, high = row["feedback_rate"]["low"], row["feedback_rate"]["high"]
            assert low < row["feedback_rate"]["rate"] < high

        # Another process, from the stored experiment alone, puts every user where we did.
        recorded, there = await asyncio.to_thread(
            variants_here_and_elsewhere, d.settings.database_path, HTTP_USERS
        )
        assert there == recorded

    # A restart: the same users land in the same variants (the report's users do not grow).
    with lab(tmp_path, upload_new=False) as d:
        for user in HTTP_USERS[:10]:
            d.chat(user)
        after = d.report()
        assert after["new"]["users"] == new["users"]
        assert after["control"]["users"] == control["users"]
        assert after["new"]["turns"] + after["control"]["turns"] == len(users) + 2 + 10
