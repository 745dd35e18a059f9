"""Channel settings and wiring: bad configuration stops start-up with a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from personae.app import build_app
from personae.app.backends import load_plugins
from personae.app.channels import channel_factories
from personae.errors import ConfigurationError
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.channels.helpers import make_settings


async def start(settings: Settings) -> None:
    app = build_app(settings, backends={"fake": FakeChatModel()})
    async with app.router.lifespan_context(app):
        pass


def test_every_built_in_kind_is_registered_through_the_hook() -> None:
    assert set(channel_factories(load_plugins())) >= {
        "telegram",
        "mqtt",
        "webhook",
        "slack",
        "discord",
    }


@pytest.mark.parametrize(
    ("channels", "complaint"),
    [
        ({"reconnect": {"max_attempts": 2}}, "max_attempts"),
        ({"reconnect": {"max_attempts": 11}}, "max_attempts"),
        ({"adapters": {"x": {"kind": "webhook", "token": "inline"}}}, "token"),
        ({"conversation_scope": "everywhere"}, "conversation_scope"),
    ],
)
def test_invalid_settings_are_refused(channels: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Settings(channels=channels)  # type: ignore[arg-type]


def test_channels_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PERSONAE_CHANNELS",
        '{"adapters": {"tg": {"kind": "telegram", "token_env": "TG_TOKEN"}}}',
    )
    assert Settings().channels.adapters["tg"].token_env == "TG_TOKEN"


@pytest.mark.parametrize(
    ("adapter", "complaint"),
    [
        ({"kind": "carrier-pigeon"}, "unknown kind 'carrier-pigeon'"),
        ({"kind": "telegram", "token_env": "NOT_SET_ANYWHERE"}, "NOT_SET_ANYWHERE"),
        ({"kind": "telegram"}, "needs a bot token"),
        ({"kind": "mqtt", "options": {"colour": "blue"}}, "unknown options"),
        ({"kind": "mqtt", "options": {"prefix": "a/#"}}, "bad topic prefix"),
        ({"kind": "slack", "token_env": "SET_TOKEN"}, "signing secret"),
        ({"kind": "discord"}, "needs a bot token"),
    ],
)
async def test_bad_adapters_stop_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adapter: dict[str, Any], complaint: str
) -> None:
    monkeypatch.setenv("SET_TOKEN", "t")
    with pytest.raises(ConfigurationError, match=complaint):
        await start(make_settings(tmp_path, {"bad": adapter}))


async def test_a_disabled_channel_is_not_started(tmp_path: Path) -> None:
    await start(make_settings(tmp_path, {"off": {"kind": "carrier-pigeon", "enabled": False}}))
