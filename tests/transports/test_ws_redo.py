"""Regenerate, swipes and edits over the WebSocket on a live server: every device of the user
sees the same numbered events; a reply's alternatives stay and can be chosen; an edit's new
text is what the model answers; a stranger cannot touch the conversation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from personae.app import build_app
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.transports.conftest import Server, make_settings
from tests.transports.ws_client import WsClient, delta_text, seqs_covered

ARIA = {"character": "aria", "text": "Where to, navigator?"}


@pytest.fixture
def ws_server(tmp_path: Path) -> Iterator[Server]:
    settings = make_settings(tmp_path)
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        yield Server(url, model, settings)


async def test_regenerate_then_swipe_back_seen_by_every_device(ws_server: Server) -> None:
    ws_server.model.enqueue("Vesta, captain.")
    phone, _ = await WsClient.open(ws_server.url, user="sam", device_id="phone")
    laptop, _ = await WsClient.open(ws_server.url, user="sam", device_id="laptop")
    stranger, _ = await WsClient.open(ws_server.url, user="eve")
    conversation = (await phone.request("message.send", ARIA))["result"]["conversation"]
    first = (await phone.events_until("message.done", conversation=conversation))[-1]
    first_reply = first["payload"]["message"]["id"]
    await laptop.request(
        "conversation.subscribe", {"conversation": conversation, "after_seq": first["seq"]}
    )

    ws_server.model.enqueue("Ceres, captain.", delay_s=0.01)
    asked = {"conversation": conversation, "message": first_reply}
    answer = await phone.request("message.regenerate", asked)
    assert answer["ok"] is True, answer
    on_phone = await phone.events_until("message.done", conversation=conversation)
    on_laptop = await laptop.events_until("message.done", conversation=conversation)
    assert seqs_covered(on_phone) == seqs_covered(on_laptop)
    assert on_phone[0]["event"] == "message.ack"
    assert on_phone[0]["payload"]["redo"] == "regenerate"
    assert delta_text(on_laptop) == "Ceres, captain."
    second = on_phone[-1]["payload"]["message"]
    assert second["swipe_of"] == first_reply

    refused = await stranger.request(
        "message.swipe", {"conversation": conversation, "message": first_reply}
    )
    assert refused["error"]["code"] == "conversation_not_found"
    chosen = await laptop.request(
        "message.swipe", {"conversation": conversation, "message": first_reply}
    )
    assert chosen["result"]["message_id"] == first_reply
    swiped = await phone.events_until("message.swiped", conversation=conversation)
    assert swiped[-1]["payload"]["message"]["id"] == first_reply
    assert swiped[-1]["seq"] == on_phone[-1]["seq"] + 1  # numbered with the turns

    # The history is what was chosen; the REST API lists the alternatives on request.
    path = f"{ws_server.url}/api/conversations/{conversation}/messages"
    async with httpx.AsyncClient() as http:
        shown = (await http.get(path, params={"user": "sam"})).json()
        every = (await http.get(path, params={"user": "sam", "alternatives": "true"})).json()
    assert [m["content"] for m in shown][-2:] == ["Where to, navigator?", "Vesta, captain."]
    replies = [(m["content"], m["hidden"]) for m in every if m["role"] == "assistant"][-2:]
    assert replies == [("Vesta, captain.", False), ("Ceres, captain.", True)]
    for client in (phone, laptop, stranger):
        await client.close()


async def test_an_edit_answers_the_new_text_and_a_stale_edit_is_refused(ws_server: Server) -> None:
    ws_server.model.enqueue("Cast? Which cast?")
    client, _ = await WsClient.open(ws_server.url, user="sam")
    sent = (await client.request("message.send", {"character": "aria", "text": "the cast"}))[
        "result"
    ]
    conversation = sent["conversation"]
    await client.events_until("message.done", conversation=conversation)

    ws_server.model.enqueue("The cats are aboard.")
    edit = {"conversation": conversation, "message": sent["message_id"], "text": "the cats"}
    assert (await client.request("message.edit", edit))["ok"] is True
    frames = await client.events_until("message.done", conversation=conversation)
    assert frames[0]["payload"]["redo"] == "edit"
    assert frames[0]["payload"]["message"]["content"] == "the cats"
    assert frames[0]["payload"]["message"]["edited_at"] is not None
    assert ws_server.model.requests[-1].messages[-1].content == "the cats"

    stale = await client.request("message.edit", {**edit, "message": "msg_gone"})
    assert stale["error"]["code"] == "conflict"
    empty = await client.request("message.edit", {**edit, "text": "  "})
    assert empty["error"]["code"] == "invalid_request"
    await client.close()
