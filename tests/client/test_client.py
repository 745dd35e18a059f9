"""personae.client against a live server: streaming, cancel, retries, reconnect and resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from personae.app import build_app
from personae.client import ClientError, PersonaeClient, SyncPersonaeClient
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.transports.conftest import Server, make_settings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    settings = make_settings(tmp_path)
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        yield Server(url, model, settings)


async def test_send_and_stream_a_reply(server: Server) -> None:
    server.model.enqueue("Aye, captain, course laid in.", delay_s=0.01)
    async with PersonaeClient(server.url, user="sam") as client:
        assert client.hello["user"] == "sam"
        reply = await client.send("aria", "Engage.")
        assert reply.conversation.startswith("conv_")
        assert await reply.text() == "Aye, captain, course laid in."
        done = await reply.done()
        assert done["message"]["content"] == "Aye, captain, course laid in."
        follow_up = await client.send("aria", "Again?", conversation=reply.conversation)
        assert follow_up.conversation == reply.conversation
        await follow_up.done()


async def test_cancel_ends_the_reply_with_an_error(server: Server) -> None:
    server.model.enqueue("on " * 300, delay_s=0.02)
    async with PersonaeClient(server.url, user="sam") as client:
        reply = await client.send("aria", "Talk forever.")
        chunks = aiter(reply)
        await anext(chunks)
        assert await reply.cancel() is True
        with pytest.raises(ClientError, match="cancelled"):
            await reply.done()


async def test_errors_come_back_as_client_errors(server: Server) -> None:
    async with PersonaeClient(server.url, user="sam") as client:
        with pytest.raises(ClientError) as caught:
            await client.send("nobody", "hi")
    assert caught.value.code == "character_not_found"


async def test_a_dropped_connection_reconnects_and_the_reply_continues(server: Server) -> None:
    words = [f"w{i}" for i in range(30)]
    server.model.enqueue(" ".join(words), delay_s=0.03)
    async with PersonaeClient(server.url, user="sam") as client:
        reply = await client.send("aria", "Count for me.")
        received: list[str] = []
        async for chunk in reply:
            received.append(chunk)
            if len(received) == 3:
                assert client._socket is not None
                await client._socket.close()  # the network drops mid-reply
        assert "".join(received) == " ".join(words)
        assert (await reply.done())["message"]["content"] == " ".join(words)


async def test_a_send_in_flight_during_a_drop_is_not_duplicated(server: Server) -> None:
    async with PersonaeClient(server.url, user="sam") as client:
        assert client._socket is not None
        await client._socket.close()  # dropped before the answer comes back
        reply = await client.send("bram", "Open up!", idempotency_key="door-1")
        await reply.done()
        again = await client.send("bram", "Open up!", idempotency_key="door-1")
        assert again.message_id == reply.message_id
        assert (await again.done())["duplicate"] is True
    assert len(server.model.requests) == 1


async def test_a_reply_that_arrives_before_the_answer_to_its_send_is_kept_whole() -> None:
    # In a conversation the connection follows already, a short reply can reach the client
    # before the answer to its send: its events, its end included, wait for it there.
    def event(seq: int, name: str, payload: dict[str, Any]) -> str:
        frame = {"type": "event", "event": name, "conversation": "conv_1", "seq": seq}
        return json.dumps({**frame, "payload": payload})

    async def script(ws: ServerConnection) -> None:
        hello = json.loads(await ws.recv())
        result = {"type": "hello", "user": "sam", "resumed": []}
        await ws.send(json.dumps({"type": "res", "id": hello["id"], "ok": True, "result": result}))
        async for raw in ws:
            request = json.loads(raw)
            if request["method"] != "message.send":
                continue
            await ws.send(event(1, "message.delta", {"reply_to": "msg_1", "text": "Aye."}))
            await ws.send(event(2, "message.delta", {"reply_to": "msg_other", "text": "Hm."}))
            await ws.send(event(3, "message.done", {"reply_to": "msg_other", "message": {}}))
            await ws.send(event(4, "message.done", {"reply_to": "msg_1", "message": {"n": 1}}))
            sent = {"conversation": "conv_1", "message_id": "msg_1", "duplicate": False}
            await ws.send(
                json.dumps({"type": "res", "id": request["id"], "ok": True, "result": sent})
            )

    async with serve(script, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with PersonaeClient(f"ws://127.0.0.1:{port}", user="sam") as client:
            reply = await client.send("aria", "Engage.")
            assert await asyncio.wait_for(reply.text(), 5) == "Aye."
            assert (await reply.done())["message"] == {"n": 1}
            assert not client._early  # another device's reply, ended: not kept past the send


async def test_an_unreachable_server_is_a_clear_error() -> None:
    client = PersonaeClient("http://127.0.0.1:9", user="sam", reconnect=False)
    with pytest.raises(ClientError) as caught:
        await client.connect()
    assert caught.value.code == "unreachable"


def test_the_sync_client_streams(server: Server) -> None:
    server.model.enqueue("Tea is on the stove.", delay_s=0.01)
    with SyncPersonaeClient(server.url, user="ann") as client:
        assert "".join(client.stream("bram", "Hello?")) == "Tea is on the stove."
        assert client.send("bram", "More?")["message"]["content"] == "Hello from the fake model."
        assert client.request("ping")["pong"] > 0


async def test_many_replies_at_once_on_one_client(server: Server) -> None:
    async with PersonaeClient(server.url, user="sam") as client:
        replies = await asyncio.gather(
            *(client.send("aria", f"q{i}", new_conversation=True) for i in range(5))
        )
        texts = await asyncio.gather(*(r.text() for r in replies))
    assert texts == ["Hello from the fake model."] * 5
