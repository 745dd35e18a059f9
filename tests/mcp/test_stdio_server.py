"""``python -m personae mcp serve`` as a stdio subprocess with a temporary config, driven by
the official SDK's client: it lists and calls Personae's tools with the key it was started
with, and refuses everything without one. The backend is the fake OpenAI-compatible server
(personae.fakellm) on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

from personae.fakellm import FakeLLM, FakeLLMConfig, ReplyLengths
from tests.live_server import live_server

pytestmark = pytest.mark.slow  # a server process per test

REPO_CHARACTERS = Path(__file__).parents[2] / "characters"
KEY = "sk-mcp-stdio-test"


@pytest.fixture
def config_dir(tmp_path: Path) -> Iterator[Path]:
    fake = FakeLLM(FakeLLMConfig(tokens_per_s=0, lengths=ReplyLengths.parse("fixed:5")))
    with live_server(fake) as url:  # type: ignore[arg-type]  # any ASGI app serves
        config = {
            "data_dir": str(tmp_path / "data"),
            "characters_dir": str(REPO_CHARACTERS),
            "watch_characters": False,
            "api_keys": [KEY],
            "llm": {"base_url": f"{url}/v1", "model": "fake"},
            "memory": {"enabled": True, "embedder": "none"},
        }
        (tmp_path / "personae.yaml").write_text(yaml.safe_dump(config))
        yield tmp_path


def server(config_dir: Path, key: str | None) -> Client:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "personae", "mcp", "serve", "--config-dir", str(config_dir)],
        env={"PERSONAE_API_KEY": key} if key else {},
        cwd=config_dir,
    )
    return Client(params, read_timeout_seconds=60)


async def test_a_client_lists_and_calls_the_tools(config_dir: Path) -> None:
    async with server(config_dir, KEY) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        listed = await client.call_tool("list_characters", {})
        chat = await client.call_tool("chat", {"character": "aria", "message": "I am Ann Lee."})
        found = await client.call_tool("memory_search", {"query": "Ann Lee"})

    assert names == {"chat", "list_characters", "memory_search", "memory_read"}
    assert {c["id"] for c in listed.structured_content["characters"]} >= {"aria", "bram"}
    assert not chat.is_error
    reply = chat.structured_content["reply"]
    assert reply.split()  # the fake backend's words: " t<ns>" stamps
    assert chat.content == [TextContent(text=reply)]
    assert chat.structured_content["conversation"].startswith("conv_")
    assert any("Ann Lee" in hit["text"] for hit in found.structured_content["hits"])


async def test_without_a_key_every_request_is_refused(config_dir: Path) -> None:
    async with server(config_dir, None) as client:
        with pytest.raises(MCPError) as listing:
            await client.list_tools()
        with pytest.raises(MCPError) as calling:
            await client.call_tool("chat", {"character": "aria", "message": "hi"})

    for refused in (listing.value, calling.value):
        assert refused.message == (
            "not_authenticated: an API key is required (Authorization: Bearer <key>)"
        )


async def test_a_wrong_key_is_refused_too(config_dir: Path) -> None:
    async with server(config_dir, "sk-wrong") as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("list_characters", {})
    assert refused.value.message.startswith("not_authenticated:")
