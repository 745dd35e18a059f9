"""Personae's MCP tools at /mcp of a live server, called by the official SDK's client: the
same API keys as the rest of the API, memory scoped to the caller, errors as tool errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

from tests.transports.security_helpers import Deployment, deployment

FULL_TEXT_MEMORY = {"enabled": True, "embedder": "none"}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, memory=FULL_TEXT_MEMORY) as d:
        yield d


@asynccontextmanager
async def mcp_client(d: Deployment, who: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {d.keys[who]}"} if who else {}
    async with httpx2.AsyncClient(headers=headers) as http:
        transport = streamable_http_client(f"{d.url}/mcp", http_client=http)
        async with Client(transport, read_timeout_seconds=30) as client:
            yield client


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def call(d: Deployment, who: str, tool: str, **args: Any) -> tuple[bool, str, Any]:
    """(is_error, text, structured content) of one call."""
    async with mcp_client(d, who) as client:
        result = await client.call_tool(tool, args)
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent))
    return result.is_error, text, result.structured_content


async def test_the_tools_are_listed(live: Deployment) -> None:
    async with mcp_client(live, "alice") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(tools) == {"chat", "list_characters", "memory_search", "memory_read"}
    assert tools["chat"].input_schema["required"] == ["character", "message"]


async def test_chat_is_a_turn_like_any_other(live: Deployment) -> None:
    live.model.enqueue("Hello Alice, welcome back.")
    live.model.enqueue("Still here.")

    failed, text, data = await call(
        live, "alice", "chat", character="aria", message="Hi, I am Alice."
    )
    assert not failed
    assert text == "Hello Alice, welcome back."
    assert data["character"] == "aria"
    again = await call(
        live,
        "alice",
        "chat",
        character="aria",
        message="Are you there?",
        conversation=data["conversation"],
    )
    assert again[2]["conversation"] == data["conversation"]
    assert again[1] == "Still here."

    # The turn is stored like any other: the REST API shows it to alice.
    messages = live.call("alice", "GET", f"/api/conversations/{data['conversation']}/messages")
    assert messages.status_code == 200
    assert [m["content"] for m in messages.json()][-2:] == ["Are you there?", "Still here."]
    # The model saw the conversation, the first exchange included.
    assert "Hi, I am Alice." in [m.content for m in live.model.requests[-1].messages]


async def test_memory_search_and_read_reach_only_the_callers_memory(live: Deployment) -> None:
    await call(live, "alice", "chat", character="aria", message="My name is Alice Moreau.")
    await call(live, "bob", "chat", character="aria", message="My name is Bob Stone.")

    failed, text, data = await call(live, "alice", "memory_search", query="Moreau")
    assert not failed
    assert data["hits"]
    assert all(hit["character"] == "aria" for hit in data["hits"])
    assert "Alice Moreau" in text
    assert "Bob" not in text

    bobs = (await call(live, "bob", "memory_read"))[2]["items"]
    assert bobs
    assert all("Alice" not in item["text"] for item in bobs)
    # alice naming bob's items by id gets nothing: another user's item looks unknown.
    assert (await call(live, "alice", "memory_read", ids=[bobs[0]["id"]]))[2]["items"] == []
    assert (await call(live, "bob", "memory_search", query="Moreau"))[2]["hits"] == []


async def test_a_user_key_cannot_act_for_another_user(live: Deployment) -> None:
    failed, text, _ = await call(live, "alice", "memory_search", query="Stone", user="bob")
    assert failed
    assert text == "permission_denied: a user's key acts only for that user"


async def test_bad_calls_are_tool_errors_that_say_why(live: Deployment) -> None:
    assert await call(live, "alice", "chat", character="nobody", message="hi") == (
        True,
        "character_not_found: unknown character 'nobody'",
        None,
    )
    failed, text, _ = await call(live, "alice", "chat", character="aria")
    assert failed
    assert text.startswith("invalid_request: invalid arguments:")
    assert "message" in text
    failed, text, _ = await call(live, "alice", "chat", character="aria", message="   ")
    assert (failed, text) == (True, "invalid_request: the message is empty")
    assert live.model.requests == []  # nothing reached the model


async def test_an_unauthenticated_client_is_refused(live: Deployment) -> None:
    with pytest.raises(BaseExceptionGroup) as refused:  # how the SDK reports an HTTP 401
        async with mcp_client(live, None) as client:
            await client.list_tools()
    assert any(isinstance(e, MCPError) for e in leaves(refused.value))

    async with httpx.AsyncClient() as http:
        raw = await http.post(
            f"{live.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": "Bearer not-a-key", "Accept": "application/json"},
        )
    assert raw.status_code == 401
    assert raw.json()["error"]["code"] == "not_authenticated"
    assert raw.headers["www-authenticate"] == "Bearer"
