"""The ``mcp:`` settings refuse what cannot work, with the reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from personae.settings import McpSettings, Settings


def test_a_server_is_stdio_or_http() -> None:
    config = McpSettings(servers={"shop": {"command": "shop-mcp", "args": ["--stdio"]}})  # type: ignore[dict-item]
    assert config.servers["shop"].command == "shop-mcp"
    assert config.servers["shop"].timeout_s == 5.0
    for both_or_neither in ({"command": "x", "url": "http://h/mcp"}, {}):
        with pytest.raises(ValidationError, match="either a command"):
            McpSettings(servers={"shop": both_or_neither})  # type: ignore[dict-item]


@pytest.mark.parametrize("name", ["Shop", "my_shop", "a__b", "", "x" * 32])
def test_server_names_stay_apart_from_tool_names(name: str) -> None:
    with pytest.raises(ValidationError, match="MCP server name"):
        McpSettings(servers={name: {"command": "x"}})  # type: ignore[dict-item]


def test_mcp_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_MCP_SERVE_HTTP", "false")
    monkeypatch.setenv("PERSONAE_MCP_SERVERS", '{"shop": {"url": "http://127.0.0.1:9/mcp"}}')
    settings = Settings()
    assert settings.mcp.serve_http is False
    assert settings.mcp.servers["shop"].url == "http://127.0.0.1:9/mcp"
