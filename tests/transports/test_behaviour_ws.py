"""state.changed over the WebSocket, against a live uvicorn server with the sample character
Mira: numbered in the conversation's log between the ack and the reply, replayed on resume;
the OpenAI-compatible API ignores it and answers as usual."""

from __future__ import annotations

import httpx

from tests.transports.conftest import Server
from tests.transports.ws_client import WsClient, seqs_covered


async def test_state_changed_arrives_numbered_and_replays(server: Server) -> None:
    server.model.enqueue("Oh. Thank you.")
    client, _ = await WsClient.open(server.url, user="sam")
    answer = await client.request(
        "message.send", {"character": "mira", "text": "Thanks, you are lovely"}
    )
    conversation = answer["result"]["conversation"]
    frames = await client.events_until("message.done", conversation=conversation)
    await client.close()

    assert [f["event"] for f in frames[:2]] == ["message.ack", "state.changed"]
    assert seqs_covered(frames) == list(range(1, frames[-1]["seq"] + 1))  # no gaps
    changed = frames[1]
    assert changed["seq"] == 2
    payload = changed["payload"]
    assert payload["character"] == "mira"
    assert payload["reply_to"] == answer["result"]["message_id"]
    assert {c["name"]: (c["old"], c["new"]) for c in payload["changes"]} == {
        "mood": ("neutral", "happy"),
        "affinity": (30, 45),
    }
    assert payload["state"]["state"] == "wary"

    # A device that subscribes afterwards gets it from the stored log, same seq and payload.
    other, _ = await WsClient.open(server.url, user="sam")
    subscribed = await other.request(
        "conversation.subscribe", {"conversation": conversation, "after_seq": 0}
    )
    assert subscribed["ok"] is True
    replayed = await other.events_until("message.done", conversation=conversation)
    await other.close()
    assert next(f for f in replayed if f["event"] == "state.changed")["payload"] == payload


async def test_the_openai_api_ignores_state_changes(server: Server) -> None:
    server.model.enqueue("Oh. Thank you.")
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "mira", "messages": [{"role": "user", "content": "Thanks, lovely"}]},
        )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Oh. Thank you."
