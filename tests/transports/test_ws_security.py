"""The WebSocket side of security, with the ``websockets`` client on a live server: keys at
connect, whom a connection may act for, cross-user subscriptions and resumes, rate limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.transports.security_helpers import Deployment, deployment
from tests.transports.ws_client import WsClient


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path) as d:
        yield d


async def open_as(d: Deployment, who: str, **params: Any) -> tuple[WsClient, dict[str, Any]]:
    return await WsClient.open(d.url, token=d.keys[who], **params)


async def assert_refused(opened: tuple[WsClient, dict[str, Any]], code: str, close: int) -> None:
    """The connect request got an error ``code``, then the server closed with ``close``."""
    client, hello = opened
    assert hello["ok"] is False
    assert hello["error"]["code"] == code
    with pytest.raises(ConnectionClosed) as closed:
        await client.next_frame()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == close


async def test_a_user_never_subscribes_to_another_users_conversation(live: Deployment) -> None:
    bob_conversation = live.chat("bob").headers["X-Personae-Conversation"]
    alice, hello = await open_as(live, "alice")
    assert hello["result"]["user"] == "alice"
    refused = await alice.request("conversation.subscribe", {"conversation": bob_conversation})
    assert refused["ok"] is False
    assert refused["error"]["code"] == "conversation_not_found"
    await alice.close()
    # Nor by resuming it at connect.
    alice, hello = await open_as(live, "alice", resume={bob_conversation: 0})
    assert hello["result"]["resumed"] == []
    assert hello["result"]["resume_errors"] == {bob_conversation: "conversation_not_found"}
    await alice.close()
    # Bob himself can.
    bob, hello = await open_as(live, "bob", resume={bob_conversation: 0})
    assert hello["result"]["resumed"] == [bob_conversation]
    again = await bob.request("conversation.subscribe", {"conversation": bob_conversation})
    assert again["ok"] is True
    await bob.close()


async def test_a_users_ws_turn_is_hers_alone(live: Deployment) -> None:
    alice, _ = await open_as(live, "alice")
    sent = await alice.request("message.send", {"character": "aria", "text": "secret"})
    conversation = sent["result"]["conversation"]
    await alice.events_until("message.done", conversation=conversation)
    await alice.close()
    bob, hello = await open_as(live, "bob", resume={conversation: 0})
    assert hello["result"]["resume_errors"] == {conversation: "conversation_not_found"}
    cancel = await bob.request("message.cancel", {"conversation": conversation})
    assert cancel["result"] == {"cancelled": False}
    await bob.close()


async def test_a_user_key_cannot_connect_as_someone_else(live: Deployment) -> None:
    await assert_refused(await open_as(live, "alice", user="bob"), "permission_denied", 1008)


async def test_a_service_connects_for_its_tenants_users_only(live: Deployment) -> None:
    client, hello = await open_as(live, "acme-bot", user="carol")
    assert hello["result"]["user"] == "acme/carol"
    await client.close()
    outside = await open_as(live, "acme-bot", user="default/alice")
    await assert_refused(outside, "permission_denied", 1008)


async def test_no_key_or_a_bad_key_is_refused_at_connect(live: Deployment) -> None:
    await assert_refused(await WsClient.open(live.url), "not_authenticated", 1008)
    bad = await WsClient.open(live.url, token="pk_00000000_" + "x" * 43)
    await assert_refused(bad, "not_authenticated", 1008)


@pytest.mark.usefixtures("one_rate_window")
async def test_ws_messages_are_rate_limited_with_retry_after(tmp_path: Path) -> None:
    limits = {"user": {"requests_per_minute": 3, "tokens_per_minute": None}}
    with deployment(tmp_path, security={"rate_limits": limits}) as d:
        client, hello = await open_as(d, "alice")  # the connect counts: 1 of 3
        assert hello["ok"] is True
        sent = [
            await client.request("message.send", {"character": "aria", "text": f"m{i}"})
            for i in range(3)
        ]
        assert [s["ok"] for s in sent] == [True, True, False]
        error = sent[2]["error"]
        assert error["code"] == "rate_limited"
        assert error["retryable"] is True
        assert 0 < error["retry_after"] <= 60
        assert (await client.request("ping"))["ok"] is True  # the connection lives on
        await client.close()
        # A new connection with the same key is refused at connect, with 1013 (try later).
        await assert_refused(await open_as(d, "alice"), "rate_limited", 1013)
        # Other users have their own budgets.
        bob, hello = await open_as(d, "bob")
        assert hello["ok"] is True
        await bob.close()
