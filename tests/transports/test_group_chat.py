"""Group chats on a live server: three characters, two users, one conversation. Who answers
follows mentions, then talkativeness, then a seeded draw; mute, force-speak and the cap on
replies per message hold; both users see the same events with the same seqs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from personae.app import build_app
from personae.core.types import Role
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.transports.ws_client import WsClient, seqs_covered

ADMIN = "sk-group-admin"
CHARACTERS = {  # id: (talkativeness, group greeting)
    "ann": (1.0, "Ann waves at everyone."),
    "bo": (0.0, None),
    "cy": (0.0, None),
}


class Site:
    def __init__(self, url: str, model: FakeChatModel) -> None:
        self.url = url
        self.model = model

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def start_group(self, seed: str = "fixed-seed", **body: Any) -> dict[str, Any]:
        body = {"characters": ["ann", "bo", "cy"], "users": ["kim"], "seed": seed, **body}
        answer = self.call("POST", "/api/groups", params={"user": "sam"}, json=body)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    async def connect(self, user: str) -> WsClient:
        client, hello = await WsClient.open(self.url, token=ADMIN, user=user)
        assert hello["ok"], hello
        return client


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    folder = tmp_path / "characters"
    folder.mkdir()
    for cid, (chattiness, group_greeting) in CHARACTERS.items():
        lines = [
            f"id: {cid}",
            f"name: {cid.title()}",
            f"persona: '{{{{char}}}} is {cid.title()}, one of three friends.'",
            f"greetings: ['Hello from {cid.title()}.']",
            f"extensions: {{talkativeness: {chattiness}}}",
        ]
        if group_greeting:
            lines.append(f"group_only_greetings: ['{group_greeting}']")
        (folder / f"{cid}.yaml").write_text("\n".join(lines) + "\n")
    settings = Settings(
        data_dir=tmp_path / "data",
        characters_dir=folder,
        api_keys=[ADMIN],
        routes={"retry": {"retries": 0}},
        limits={"group_max_replies": 2},
    )
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        yield Site(url, model)


async def replies(client: WsClient, conversation: str, count: int) -> list[dict[str, Any]]:
    """Every event of the next ``count`` replies (through their ``message.done``)."""
    frames: list[dict[str, Any]] = []
    for _ in range(count):
        frames += await client.events_until("message.done", conversation=conversation)
    return frames


def speakers(frames: list[dict[str, Any]]) -> list[str]:
    return [f["payload"]["message"]["speaker"] for f in frames if f["event"] == "message.done"]


async def send(client: WsClient, conversation: str, text: str, **extra: Any) -> dict[str, Any]:
    answer = await client.request(
        "message.send", {"conversation": conversation, "text": text, **extra}
    )
    assert answer["ok"], answer
    return dict(answer["result"])


async def test_three_characters_two_users_in_one_conversation(site: Site) -> None:
    group = site.start_group()
    conversation = group["conversation"]
    assert [m["character"] for m in group["members"]] == ["ann", "bo", "cy"]
    assert group["participants"] == ["kim"]
    sam, kim = await site.connect("sam"), await site.connect("kim")
    subscribed = await kim.request("conversation.subscribe", {"conversation": conversation})
    assert subscribed["ok"], subscribed
    site.model.enqueue("Cy here.")
    site.model.enqueue("Bo here.")

    # Mentions first, in the order named; the cap (2) stops Ann, who would speak next.
    await send(sam, conversation, "Cy and Bo, what do you think?")
    seen_by_sam = await replies(sam, conversation, 2)
    seen_by_kim = await replies(kim, conversation, 2)
    assert speakers(seen_by_sam) == ["cy", "bo"]
    assert [(f["seq"], f["event"]) for f in seen_by_kim] == [
        (f["seq"], f["event"]) for f in seen_by_sam
    ]
    assert seqs_covered(seen_by_sam) == list(
        range(seen_by_sam[0]["seq"], seen_by_sam[-1]["seq"] + 1)
    )
    deltas = [f for f in seen_by_sam if f["event"] == "message.delta"]
    assert {f["payload"]["speaker"] for f in deltas} == {"cy", "bo"}

    # Each speaks as itself and sees the others by name; Bo sees Cy's reply before its turn.
    cy_prompt, bo_prompt = site.model.requests[-2:]
    assert "Cy is Cy" in cy_prompt.messages[0].content
    assert "Bo is Bo" in bo_prompt.messages[0].content
    bo_lines = [(m.role, m.content) for m in bo_prompt.messages[1:]]
    assert (Role.USER, "Ann: Ann waves at everyone.") in bo_lines  # Ann's group greeting
    assert (Role.USER, "sam: Cy and Bo, what do you think?") in bo_lines
    assert (Role.USER, "Cy: Cy here.") in bo_lines
    assert bo_lines[-1] == (Role.USER, "[Write the next reply only as Bo.]")

    # No mention: talkativeness decides (Ann always, Bo and Cy never). Kim writes this time.
    site.model.enqueue("Ann answers Kim.")
    await send(kim, conversation, "Hello everyone")
    assert speakers(await replies(kim, conversation, 1)) == ["ann"]
    assert speakers(await replies(sam, conversation, 1)) == ["ann"]  # sam sees it too

    # Ann muted: nobody is drawn by talkativeness, so one of the others is picked.
    muted = site.call(
        "PUT",
        f"/api/groups/{conversation}/members/ann",
        params={"user": "sam"},
        json={"muted": True},
    )
    assert muted.status_code == 200, muted.text
    await send(sam, conversation, "Anyone?")
    [picked] = speakers(await replies(sam, conversation, 1))
    assert picked in {"bo", "cy"}

    # Force-speak: a muted member answers when asked by name.
    await send(sam, conversation, "Ann, please.", speaker="ann")
    assert speakers(await replies(sam, conversation, 1)) == ["ann"]
    await sam.close()
    await kim.close()


async def test_the_same_seed_replays_the_same_speakers(site: Site) -> None:
    orders = []
    for _ in range(2):
        conversation = site.start_group(seed="replay", characters=["bo", "cy", "ann"])[
            "conversation"
        ]
        site.call(
            "PUT",
            f"/api/groups/{conversation}/members/ann",
            params={"user": "sam"},
            json={"muted": True},
        )
        sam = await site.connect("sam")
        order = []
        for text in ["one", "two", "three", "four", "five"]:
            await send(sam, conversation, text)
            order += speakers(await replies(sam, conversation, 1))
        orders.append(order)
        await sam.close()
    assert orders[0] == orders[1]
    assert set(orders[0]) <= {"bo", "cy"}


async def test_outsiders_and_bad_sends_are_refused(site: Site) -> None:
    conversation = site.start_group()["conversation"]
    eve = await site.connect("eve")
    refused = await eve.request("conversation.subscribe", {"conversation": conversation})
    assert refused["error"]["code"] == "conversation_not_found"
    denied = await eve.request("message.send", {"conversation": conversation, "text": "hi"})
    assert denied["error"]["code"] == "conversation_not_found"
    sam = await site.connect("sam")
    unknown = await sam.request(
        "message.send", {"conversation": conversation, "text": "hi", "speaker": "zed"}
    )
    assert unknown["error"]["code"] == "invalid_request"
    nameless = await sam.request("message.send", {"text": "hi"})
    assert nameless["error"]["code"] == "invalid_request"
    assert (
        site.call("GET", f"/api/groups/{conversation}", params={"user": "eve"}).status_code == 404
    )
    one = site.call("POST", "/api/groups", params={"user": "sam"}, json={"characters": ["ann"]})
    assert one.status_code == 400
    await eve.close()
    await sam.close()


def test_a_user_starts_a_group_for_itself_only(site: Site) -> None:
    key = site.call("POST", "/api/admin/keys", json={"role": "user", "subject": "lee"})
    headers = {"Authorization": f"Bearer {key.json()['token']}"}
    body = {"characters": ["ann", "bo"]}
    own = httpx.post(f"{site.url}/api/groups", json=body, headers=headers, timeout=30)
    assert own.status_code == 201, own.text
    with_others = httpx.post(
        f"{site.url}/api/groups", json={**body, "users": ["kim"]}, headers=headers, timeout=30
    )
    assert with_others.status_code == 403
    conversation = own.json()["conversation"]
    theirs = site.call("GET", f"/api/groups/{conversation}", params={"user": "kim"})
    assert theirs.status_code == 404
