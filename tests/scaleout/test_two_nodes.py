"""Two Personae processes on one Redis and one database, as two machines behind a load
balancer: the same events on both, a resume on the other node, a node killed mid-turn, a
Redis restart. Every node here is a real ``personae serve`` process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.characters.card_fixtures import v3_card
from tests.llm.fake_openai_server import FakeOpenAIServer, Reply
from tests.postgres_server import PostgresServer, shared_server
from tests.redis_server import RedisServer
from tests.scaleout.nodes import Node, node_env, run_node
from tests.transports.ws_client import WsClient, delta_text, seqs_covered

pytestmark = pytest.mark.slow

WORDS = [f"w{i}" for i in range(30)]
SLOW = Reply([f"{w} " for w in WORDS[:-1]] + [WORDS[-1]], token_delay_s=0.1)
ARIA = {"character": "aria", "text": "Where to, navigator?"}


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest) -> dict[str, str]:
    """One SQLite file on this machine, or one PostgreSQL database (as across machines)."""
    if request.param == "sqlite":
        return {}
    return {
        "PERSONAE_STORAGE_BACKEND": "postgres",
        "PERSONAE_STORAGE_POSTGRES_URL": shared_server().create_database(),
    }


@pytest.fixture
def nodes(
    tmp_path: Path, redis: RedisServer, backend: FakeOpenAIServer, storage: dict[str, str]
) -> Iterator[list[Node]]:
    with ExitStack() as stack:
        started = []
        for name in ("a", "b"):
            env = node_env(
                tmp_path, redis_url=redis.url, backend_url=backend.base_url, name=name, **storage
            )
            started.append(stack.enter_context(run_node(tmp_path, name, env)))
        yield started


async def until_words(client: WsClient, conversation: str, count: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while len(delta_text(frames).split()) < count:
        frames += await client.events_until("message.delta", conversation=conversation)
    return frames


async def test_devices_on_two_nodes_see_the_same_events_in_the_same_order(
    nodes: list[Node], backend: FakeOpenAIServer
) -> None:
    a, b = nodes
    backend.enqueue(Reply(["Course", " plotted."], token_delay_s=0.05), Reply(["Aye."]))
    phone, _ = await WsClient.open(a.url, user="sam", device_id="phone")
    laptop, _ = await WsClient.open(b.url, user="sam", device_id="laptop")
    first = (await phone.request("message.send", ARIA))["result"]
    conversation = first["conversation"]
    subscribed = await laptop.request("conversation.subscribe", {"conversation": conversation})
    assert subscribed["ok"] is True
    on_phone = await phone.events_until("message.done", conversation=conversation)
    on_laptop = await laptop.events_until("message.done", conversation=conversation)
    assert delta_text(on_phone) == delta_text(on_laptop) == "Course plotted."
    assert seqs_covered(on_laptop) == seqs_covered(on_phone)
    assert [f["event"] for f in on_laptop][-1] == "message.done"

    # The next turn is sent from the other node: its seqs follow on, seen on both.
    again = {**ARIA, "conversation": conversation, "text": "And then?"}
    sent_again = await laptop.request("message.send", again)
    assert sent_again["ok"] is True, sent_again
    more_laptop = await laptop.events_until("message.done", conversation=conversation)
    more_phone = await phone.events_until("message.done", conversation=conversation)
    assert seqs_covered(more_phone) == seqs_covered(more_laptop)
    everything = seqs_covered(on_phone + more_phone)
    assert everything == list(range(1, everything[-1] + 1))  # gap-free across both nodes
    for client in (phone, laptop):
        await client.close()


async def test_a_reply_started_on_one_node_resumes_on_the_other(
    nodes: list[Node], backend: FakeOpenAIServer
) -> None:
    a, b = nodes
    backend.enqueue(SLOW)
    client, _ = await WsClient.open(a.url, user="sam")
    conversation = (await client.request("message.send", ARIA))["result"]["conversation"]
    first_part = await until_words(client, conversation, 5)
    await client.socket.close()  # the load balancer sends the reconnect elsewhere

    last_seq = first_part[-1]["seq"]
    again, hello = await WsClient.open(b.url, user="sam", resume={conversation: last_seq})
    assert hello["result"]["resumed"] == [conversation]
    second_part = await again.events_until("message.done", conversation=conversation)
    both = first_part + second_part
    covered = seqs_covered(both)
    assert covered == list(range(1, covered[-1] + 1)), "no gap and no duplicate"
    assert delta_text(both) == " ".join(WORDS)
    await again.close()


async def test_a_node_killed_mid_turn_has_its_turn_ended_by_another(
    nodes: list[Node], backend: FakeOpenAIServer
) -> None:
    a, b = nodes
    backend.enqueue(SLOW, Reply(["Back", " again."]))
    client, _ = await WsClient.open(a.url, user="sam")
    sent = (await client.request("message.send", ARIA))["result"]
    conversation = sent["conversation"]
    first_part = await until_words(client, conversation, 3)
    a.kill()
    killed_at = time.monotonic()
    await client.close()

    survivor, _ = await WsClient.open(
        b.url, user="sam", resume={conversation: first_part[-1]["seq"]}
    )
    endings = ("error", "message.done")
    rest = await survivor.events_until(*endings, conversation=conversation, wait_s=20)
    waited = time.monotonic() - killed_at
    ending = rest[-1]
    assert ending["event"] == "error"  # ended explicitly, never answered twice
    assert ending["payload"]["code"] == "interrupted"
    assert ending["payload"]["retryable"] is True
    assert ending["payload"]["reply_to"] == sent["message_id"]
    assert waited < 3 + 2 + 5  # visibility timeout + a sweep + slack on a busy machine
    covered = seqs_covered(first_part + rest)
    assert covered == list(range(1, covered[-1] + 1))

    # The acknowledged message is kept, and the conversation goes on from the other node.
    history = (await b.get(f"/api/conversations/{conversation}/messages", user="sam")).json()
    assert [m["content"] for m in history if m["role"] == "user"] == [ARIA["text"]]
    assert [m for m in history if m["role"] == "assistant" and m["status"] == "complete"][1:] == []
    follow_up = {**ARIA, "conversation": conversation, "text": "Hello?"}
    assert (await survivor.request("message.send", follow_up))["ok"] is True
    after = await survivor.events_until("message.done", conversation=conversation)
    assert delta_text(after) == "Back again."
    assert seqs_covered(after)[0] == covered[-1] + 1
    await survivor.close()


async def test_a_redis_restart_degrades_readiness_and_nothing_crashes(
    nodes: list[Node], backend: FakeOpenAIServer, redis: RedisServer
) -> None:
    a, b = nodes
    assert (await a.ready()).status_code == 200
    redis.stop()
    down = await a.ready()
    assert down.status_code == 503
    assert down.json()["checks"]["coordination"].startswith("error: redis unreachable")
    client, _ = await WsClient.open(a.url, user="sam")
    refused = await client.request("message.send", ARIA)
    assert refused["ok"] is False
    assert refused["error"]["code"] == "coordination_unavailable"
    assert refused["error"]["retryable"] is True

    redis.start()  # the same port, empty: nodes reconnect by themselves
    deadline = time.monotonic() + 15
    while (await a.ready()).status_code != 200 or (await b.ready()).status_code != 200:
        assert time.monotonic() < deadline, (await a.ready()).json()
        await asyncio.sleep(0.2)
    backend.enqueue(Reply(["Still", " here."], token_delay_s=0.05))
    watcher, _ = await WsClient.open(b.url, user="sam", device_id="laptop")
    answer = await client.request("message.send", ARIA)
    assert answer["ok"], answer  # what refused it, if anything did
    conversation = answer["result"]["conversation"]
    await watcher.request("conversation.subscribe", {"conversation": conversation})
    on_a = await client.events_until("message.done", conversation=conversation)
    on_b = await watcher.events_until("message.done", conversation=conversation)
    assert delta_text(on_a) == "Still here."
    assert on_b[-1]["payload"]["message"]["content"] == "Still here."
    assert a.process.poll() is None
    assert b.process.poll() is None
    for c in (client, watcher):
        await c.close()


async def test_a_character_uploaded_on_one_node_is_served_by_the_other(
    nodes: list[Node],
) -> None:
    a, b = nodes
    async with httpx.AsyncClient(timeout=30) as http:
        created = await http.post(
            f"{a.url}/api/characters",
            content=json.dumps(v3_card()),
            headers={"Content-Type": "application/json"},
        )
        assert created.status_code == 201, created.text
        character = created.json()["id"]
        deadline = time.monotonic() + 10
        while True:  # no file watching here: only the announcement can tell node b
            listed = (await http.get(f"{b.url}/api/characters")).json()
            if character in {c["id"] for c in listed}:
                break
            assert time.monotonic() < deadline, "node b never served the upload"
            await asyncio.sleep(0.1)
    said = await asyncio.to_thread(b.log.read_text)
    assert "reloaded after another node's change" in said


async def test_a_postgres_restart_degrades_readiness_and_nothing_crashes(
    tmp_path: Path, redis: RedisServer, backend: FakeOpenAIServer
) -> None:
    database = PostgresServer()  # the test's own: it is stopped and started again
    database.start()
    try:
        env = node_env(
            tmp_path,
            redis_url=redis.url,
            backend_url=backend.base_url,
            name="a",
            PERSONAE_STORAGE_BACKEND="postgres",
            PERSONAE_STORAGE_POSTGRES_URL=database.url(),
            PERSONAE_STORAGE_POSTGRES_WAIT_TIMEOUT_S="2",  # answers within the client's wait
        )
        with run_node(tmp_path, "a", env) as a:
            assert (await a.ready()).status_code == 200
            database.stop()
            down = await a.ready()
            assert down.status_code == 503
            assert down.json()["checks"]["storage"].startswith("error")
            client, _ = await WsClient.open(a.url, user="sam")
            refused = await client.request("message.send", ARIA)
            assert refused["ok"] is False
            assert refused["error"]["retryable"] is True, refused

            database.start()  # the same port and data: the pool reconnects by itself
            deadline = time.monotonic() + 20
            while (await a.ready()).status_code != 200:
                assert time.monotonic() < deadline, (await a.ready()).json()
                await asyncio.sleep(0.2)
            backend.enqueue(Reply(["Back."]))
            sent = (await client.request("message.send", ARIA))["result"]
            conversation = sent["conversation"]
            done = await client.events_until("message.done", conversation=conversation, wait_s=30)
            assert delta_text(done) == "Back."
            assert a.process.poll() is None
            await client.close()
    finally:
        database.remove()


async def test_a_key_issued_on_one_node_works_on_the_other_and_its_revoke_at_once(
    nodes: list[Node],
) -> None:
    a, b = nodes
    async with httpx.AsyncClient(timeout=30) as http:
        issued = await http.post(
            f"{a.url}/api/admin/keys", json={"role": "admin", "subject": "ops"}
        )
        assert issued.status_code == 201, issued.text
        key = issued.json()
        signed = {"Authorization": f"Bearer {key['token']}"}
        # Node b knows the key (one store for both) and is closed to callers without one.
        assert (await http.get(f"{b.url}/api/characters")).status_code == 401
        assert (await http.get(f"{b.url}/api/characters", headers=signed)).status_code == 200

        revoked = await http.delete(f"{a.url}/api/admin/keys/{key['id']}", headers=signed)
        assert revoked.status_code == 200, revoked.text
        deadline = time.monotonic() + 2  # under the 5 s key cache: the announcement did it
        while (await http.get(f"{b.url}/api/characters", headers=signed)).status_code != 401:
            assert time.monotonic() < deadline, "node b still accepts the revoked key"
            await asyncio.sleep(0.05)
