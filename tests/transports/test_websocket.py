"""The WebSocket protocol against a live uvicorn server, with the real ``websockets`` client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from personae.app import build_app
from personae.errors import IllegalTransition
from personae.testing import FakeChatModel
from personae.transports.ws_connection import Connection
from personae.transports.ws_limits import WsLimits
from personae.transports.ws_state import ConnectionState
from tests.live_server import live_server
from tests.transports.conftest import Server, make_settings
from tests.transports.ws_client import WsClient, delta_text, seqs_covered

ARIA = {"character": "aria", "text": "Where to, navigator?"}


@pytest.fixture
def ws_server(tmp_path: Path) -> Iterator[Server]:
    settings = make_settings(
        tmp_path,
        realtime={"heartbeat_interval_s": 0.3, "idle_timeout_s": 1.5, "send_timeout_s": 0.5},
    )
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        yield Server(url, model, settings)


async def test_connect_says_hello_with_version_limits_and_identity(ws_server: Server) -> None:
    client, hello = await WsClient.open(ws_server.url, user="sam", device_id="phone")
    result = hello["result"]
    assert hello["ok"] is True
    assert result["type"] == "hello"
    assert result["protocol"] == 1
    assert result["user"] == "sam"
    assert result["device_id"] == "phone"
    assert result["limits"]["heartbeat_interval_s"] == 0.3
    assert (await client.request("ping"))["ok"] is True
    await client.close()


async def test_a_reply_streams_as_numbered_events(ws_server: Server) -> None:
    ws_server.model.enqueue("Two jumps and a bit of coasting, captain.", delay_s=0.01)
    client, _ = await WsClient.open(ws_server.url, user="sam")
    answer = await client.request("message.send", ARIA)
    assert answer["ok"] is True
    conversation = answer["result"]["conversation"]
    assert answer["result"]["ack_seq"] == 1
    frames = await client.events_until("message.done", conversation=conversation)
    assert frames[0]["event"] == "message.ack"
    assert frames[0]["payload"]["message"]["content"] == "Where to, navigator?"
    assert seqs_covered(frames) == list(range(1, seqs_covered(frames)[-1] + 1))
    assert delta_text(frames) == "Two jumps and a bit of coasting, captain."
    done = frames[-1]["payload"]
    assert done["message"]["content"] == "Two jumps and a bit of coasting, captain."
    assert done["usage"]["completion_tokens"] == 8
    await client.close()


async def test_fast_tokens_are_coalesced_to_one_delta_frame_per_window(ws_server: Server) -> None:
    limits = WsLimits()
    words = [f" w{i}" for i in range(120)]
    ws_server.model.enqueue(words, delay_s=0.001)  # ~1000 tokens/s, 20 per 20 ms window
    client, _ = await WsClient.open(ws_server.url, user="sam")
    conversation = (await client.request("message.send", ARIA))["result"]["conversation"]
    frames = await client.events_until("message.done", conversation=conversation)
    deltas = [f for f in frames if f["event"] == "message.delta"]
    assert delta_text(frames) == "".join(words)
    assert seqs_covered(frames) == list(range(1, seqs_covered(frames)[-1] + 1))
    # One delta frame per window on average: the windows the reply spans, plus the burst the
    # pace allows back to back and the window its last frame may have waited for.
    windows = frames[-1]["payload"]["latency_ms"] / (limits.coalesce_s * 1000)
    assert 1 < len(deltas) <= windows + limits.delta_burst + 1
    assert len(deltas) < len(words)
    await client.close()


async def test_a_few_tokens_close_together_go_out_as_they_come(ws_server: Server) -> None:
    # Within the burst the pace allows, a token is not held for the next window: three tokens
    # 8 ms apart make three frames (with window slots the second would wait for the third).
    burst = WsLimits().delta_burst
    ws_server.model.enqueue([f" w{i}" for i in range(burst)], delay_s=0.008)
    client, _ = await WsClient.open(ws_server.url, user="sam")
    conversation = (await client.request("message.send", ARIA))["result"]["conversation"]
    frames = await client.events_until("message.done", conversation=conversation)
    deltas = [f for f in frames if f["event"] == "message.delta"]
    assert [d["payload"]["text"] for d in deltas] == [f" w{i}" for i in range(burst)]
    assert all("first_seq" not in d for d in deltas)
    await client.close()


async def test_cancel_stops_generation(ws_server: Server) -> None:
    ws_server.model.enqueue("word " * 200, delay_s=0.02)
    client, _ = await WsClient.open(ws_server.url, user="sam")
    conversation = (await client.request("message.send", ARIA))["result"]["conversation"]
    await client.events_until("message.delta", conversation=conversation)
    cancelled = await client.request("message.cancel", {"conversation": conversation})
    assert cancelled["result"] == {"cancelled": True}
    frames = await client.events_until("error", "message.done", conversation=conversation)
    assert frames[-1]["event"] == "error"
    assert frames[-1]["payload"]["code"] == "cancelled"
    assert len(delta_text(frames).split()) < 200
    await client.close()


async def test_a_retried_idempotency_key_makes_no_second_turn(ws_server: Server) -> None:
    client, _ = await WsClient.open(ws_server.url, user="sam")
    params = {**ARIA, "idempotency_key": "send-7"}
    first = (await client.request("message.send", params))["result"]
    await client.events_until("message.done", conversation=first["conversation"])
    again = (await client.request("message.send", params))["result"]
    assert again["duplicate"] is True
    assert again["message_id"] == first["message_id"]
    assert len(ws_server.model.requests) == 1
    await client.close()


async def test_every_device_of_the_user_sees_the_conversation(ws_server: Server) -> None:
    ws_server.model.enqueue("Course plotted.", delay_s=0.01)
    phone, _ = await WsClient.open(ws_server.url, user="sam", device_id="phone")
    laptop, _ = await WsClient.open(ws_server.url, user="sam", device_id="laptop")
    stranger, _ = await WsClient.open(ws_server.url, user="eve")
    conversation = (await phone.request("message.send", ARIA))["result"]["conversation"]
    subscribed = await laptop.request("conversation.subscribe", {"conversation": conversation})
    assert subscribed["ok"] is True
    refused = await stranger.request("conversation.subscribe", {"conversation": conversation})
    assert refused["error"]["code"] == "conversation_not_found"
    on_phone = await phone.events_until("message.done", conversation=conversation)
    on_laptop = await laptop.events_until("message.done", conversation=conversation)
    assert delta_text(on_phone) == delta_text(on_laptop) == "Course plotted."
    assert seqs_covered(on_laptop) == seqs_covered(on_phone)
    for client in (phone, laptop, stranger):
        await client.close()


async def test_reconnect_and_resume_mid_reply_has_no_gap_and_no_duplicate(
    ws_server: Server,
) -> None:
    words = [f"w{i}" for i in range(40)]
    ws_server.model.enqueue(" ".join(words), delay_s=0.02)
    client, _ = await WsClient.open(ws_server.url, user="sam")
    conversation = (await client.request("message.send", ARIA))["result"]["conversation"]
    first_part: list[dict[str, Any]] = []
    while len(delta_text(first_part).split()) < 5:
        first_part += await client.events_until("message.delta", conversation=conversation)
    await client.socket.close()  # the network drops mid-reply

    last_seq = first_part[-1]["seq"]
    again, hello = await WsClient.open(ws_server.url, user="sam", resume={conversation: last_seq})
    assert hello["result"]["resumed"] == [conversation]
    second_part = await again.events_until("message.done", conversation=conversation)
    both = first_part + second_part
    covered = seqs_covered(both)
    assert covered == list(range(1, covered[-1] + 1)), "no gap and no duplicate"
    assert delta_text(both) == " ".join(words)
    await again.close()


async def test_a_silent_connection_is_closed_and_heartbeats_arrive(ws_server: Server) -> None:
    client, _ = await WsClient.open(ws_server.url, user="sam")
    ping = await client.next_frame(wait_s=5)
    assert (ping["type"], ping["event"]) == ("event", "ping")
    with pytest.raises(ConnectionClosed) as closed:
        while True:  # read, never write: the server hears nothing for idle_timeout_s
            await client.next_frame(wait_s=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


async def test_a_slow_consumer_is_dropped_without_slowing_others(ws_server: Server) -> None:
    ws_server.model.enqueue(["x" * 4000] * 3000)  # 12 MB, as fast as it goes
    ws_server.model.enqueue("Still fine.", delay_s=0.01)
    async with connect(
        ws_server.url.replace("http", "ws") + "/ws", max_size=None, max_queue=1
    ) as slow:
        await slow.send(
            json.dumps({"type": "req", "id": "c", "method": "connect", "params": {"user": "slow"}})
        )
        await slow.recv()
        await slow.send(
            json.dumps({"type": "req", "id": "s", "method": "message.send", "params": ARIA})
        )
        await asyncio.sleep(0.2)
        other, _ = await WsClient.open(ws_server.url, user="fast")
        answer = await other.request("message.send", {"character": "bram", "text": "Hi"})
        frames = await other.events_until(
            "message.done", conversation=answer["result"]["conversation"]
        )
        assert delta_text(frames) == "Still fine."
        await other.close()
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(100_000):  # now read: the close frame is behind what was queued
                await asyncio.wait_for(slow.recv(), timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013


@pytest.mark.parametrize(
    ("first_frame", "code"),
    [
        ("not json", 1008),
        (json.dumps({"type": "req", "id": "1", "method": "ping", "params": {}}), 1008),
        (
            json.dumps(
                {
                    "type": "req",
                    "id": "1",
                    "method": "connect",
                    "params": {"protocol": {"min": 2, "max": 3}},
                }
            ),
            1002,
        ),
        (b"\x00\x01binary", 1003),
    ],
)
async def test_a_bad_first_frame_closes_with_a_clear_code(
    ws_server: Server, first_frame: str | bytes, code: int
) -> None:
    async with connect(ws_server.url.replace("http", "ws") + "/ws") as socket:
        await socket.send(first_frame)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code
    assert closed.value.rcvd.reason


async def test_bad_frames_after_connect_get_errors_and_the_connection_lives(
    ws_server: Server,
) -> None:
    client, _ = await WsClient.open(ws_server.url, user="sam")
    await client.send_raw("{broken")
    assert (await client.next_frame())["payload"]["code"] == "bad_frame"
    unknown = await client.request("message.fly", {})
    assert unknown["error"]["code"] == "unknown_method"
    missing = await client.request("message.send", {"text": "no character"})
    assert missing["error"]["code"] == "invalid_request"
    assert "character" in missing["error"]["message"]
    again = await client.request("connect", {})
    assert again["error"]["code"] == "already_connected"
    empty = await client.request("message.send", {"character": "aria", "text": " "})
    assert empty["error"]["code"] == "invalid_request"
    ghost = await client.request("message.send", {"character": "nobody", "text": "hi"})
    assert ghost["error"]["code"] == "character_not_found"
    greeting = {"character": "aria", "text": "hi", "new_conversation": True, "greeting": 7}
    unknown_greeting = await client.request("message.send", greeting)
    assert unknown_greeting["error"]["code"] == "invalid_request"
    assert "no greeting 7" in unknown_greeting["error"]["message"]
    negative = await client.request("message.send", {**greeting, "greeting": -1})
    assert negative["error"]["code"] == "invalid_request"
    assert (await client.request("ping"))["ok"] is True
    await client.close()


async def test_an_oversized_frame_closes_with_1009(ws_server: Server) -> None:
    client, _ = await WsClient.open(ws_server.url, user="sam")
    await client.send_raw(
        json.dumps({"type": "req", "id": "big", "method": "ping", "params": {"pad": "x" * 100_000}})
    )
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await client.next_frame()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_a_flood_of_requests_is_refused_then_cut_off(ws_server: Server) -> None:
    client, _ = await WsClient.open(ws_server.url, user="sam")
    for i in range(200):
        await client.send_raw(json.dumps({"type": "req", "id": f"p{i}", "method": "ping"}))
    codes: list[str] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            frame = await client.next_frame()
            if frame["type"] == "res" and not frame["ok"]:
                codes.append(frame["error"]["code"])
    assert "rate_limited" in codes
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_overload_accepts_the_bounds_and_refuses_the_rest(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, realtime={"max_concurrent_turns": 2, "max_queued_turns": 4})
    model = FakeChatModel()
    for _ in range(20):
        model.enqueue("a slow and steady reply", delay_s=0.1)
    with live_server(build_app(settings, backends={"fake": model})) as url:
        clients = [(await WsClient.open(url, user=f"u{i}"))[0] for i in range(20)]
        ids = [await c.request_frame("message.send", ARIA) for c in clients]
        answers = await asyncio.gather(*(c.answer(i) for c, i in zip(clients, ids, strict=True)))
        ok = [(c, a) for c, a in zip(clients, answers, strict=True) if a["ok"]]
        refused = [a["error"] for a in answers if not a["ok"]]
        assert (len(ok), len(refused)) == (6, 14)
        assert all(e["code"] == "overloaded" and e["retry_after"] > 0 for e in refused)
        for client, answer in ok:
            frames = await client.events_until(
                "message.done", conversation=answer["result"]["conversation"]
            )
            assert delta_text(frames) == "a slow and steady reply"
        for client in clients:
            await client.close()


def test_graceful_shutdown_closes_with_1012_and_finishes_the_turn(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, realtime={"shutdown_grace_s": 5})
    model = FakeChatModel()
    model.enqueue("one two three four five six", delay_s=0.1)

    async def start_turn(url: str) -> tuple[WsClient, str]:
        client, _ = await WsClient.open(url, user="sam")
        answer = await client.request("message.send", ARIA)
        await client.events_until("message.delta")
        return client, answer["result"]["conversation"]

    async def closed_code(client: WsClient) -> int:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await client.next_frame()
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code

    loop = asyncio.new_event_loop()
    try:
        with live_server(build_app(settings, backends={"fake": model})) as url:
            client, conversation = loop.run_until_complete(start_turn(url))
        # Leaving the block stopped the server while the reply was streaming.
        assert loop.run_until_complete(closed_code(client)) == 1012
    finally:
        loop.close()
    import sqlean

    db = sqlean.connect(str(settings.database_path))
    try:
        events = [
            e
            for (e,) in db.execute(
                "SELECT event FROM events WHERE conversation_id = ? ORDER BY seq", (conversation,)
            )
        ]
    finally:
        db.close()
    assert events[-1] == "message.done"  # the grace period let the turn finish


async def test_connection_states_follow_the_client(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, realtime={"heartbeat_interval_s": 0.2, "idle_timeout_s": 5})
    app = build_app(settings, backends={"fake": FakeChatModel()})
    with live_server(app) as url:
        client, _ = await WsClient.open(url, user="sam")
        (connection,) = app.state.gateway.connections
        assert connection.state is ConnectionState.ACTIVE
        await asyncio.sleep(0.5)  # quiet for more than a heartbeat interval
        assert connection.state is ConnectionState.IDLE
        assert (await client.request("ping"))["ok"]
        assert connection.state is ConnectionState.ACTIVE
        await client.close()
        for _ in range(100):
            if connection.state is ConnectionState.CLOSED:
                break
            await asyncio.sleep(0.02)
        assert connection.state is ConnectionState.CLOSED
        assert not app.state.gateway.connections


def test_illegal_connection_transitions_raise() -> None:
    connection = Connection.__new__(Connection)
    connection.state = ConnectionState.CLOSED
    with pytest.raises(IllegalTransition, match="websocket connection"):
        connection._move(ConnectionState.ACTIVE)
    connection.state = ConnectionState.CONNECTING
    with pytest.raises(IllegalTransition):
        connection._move(ConnectionState.IDLE)
