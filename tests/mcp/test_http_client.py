"""An MCP server over streamable HTTP as a skill source: another Personae's /mcp, reached
with its API key in a header (settings: ``url`` + ``headers_env``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from personae.app.mcp import mcp_target
from personae.core.skills import SkillContext, SkillRunner
from personae.errors import ConfigurationError
from personae.mcp.client import McpConnection
from personae.mcp.skills import connect_skills
from personae.settings import McpServerSettings
from tests.transports.security_helpers import Deployment, deployment

CONTEXT = SkillContext("ann", "clerk", "conv-1", "who is there?")


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path) as d:
        yield d


async def test_an_http_servers_tools_are_skills(
    peer: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PEER_MCP_TOKEN", f"Bearer {peer.keys['alice']}")
    settings = McpServerSettings(
        url=f"{peer.url}/mcp", headers_env={"Authorization": "PEER_MCP_TOKEN"}
    )
    connection = McpConnection(mcp_target("peer", settings))
    try:
        skills = {s.name: s for s in await connect_skills(connection)}
        result = await SkillRunner().run(skills["peer__list_characters"], CONTEXT, {})
    finally:
        await connection.close()

    assert set(skills) == {
        "peer__chat",
        "peer__list_characters",
        "peer__memory_search",
        "peer__memory_read",
    }
    assert skills["peer__chat"].parameters["required"] == ["character", "message"]
    assert result.ok
    assert {c["id"] for c in result.data["characters"]} >= {"aria", "bram"}


async def test_a_refused_key_means_no_skills_and_a_log_line(peer: Deployment) -> None:
    settings = McpServerSettings(url=f"{peer.url}/mcp", headers={"Authorization": "Bearer nope"})
    connection = McpConnection(mcp_target("peer", settings))
    try:
        assert await connect_skills(connection) == []
        assert connection.last_error is not None
    finally:
        await connection.close()


def test_a_missing_header_variable_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PEER_MCP_TOKEN", raising=False)
    settings = McpServerSettings(
        url="http://127.0.0.1:9/mcp", headers_env={"X-Key": "PEER_MCP_TOKEN"}
    )
    with pytest.raises(ConfigurationError, match="PEER_MCP_TOKEN, which is not set"):
        mcp_target("peer", settings)
