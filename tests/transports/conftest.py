from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from personae.app import build_app
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.live_server import live_server

REPO_CHARACTERS = Path(__file__).parents[2] / "characters"


@dataclass
class Server:
    url: str
    model: FakeChatModel
    settings: Settings

    @property
    def db(self) -> Path:
        return self.settings.database_path


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    # No retries unless a test asks: a failure scripted once should reach the client.
    overrides.setdefault("routes", {"retry": {"retries": 0}})
    return Settings(data_dir=tmp_path / "data", characters_dir=REPO_CHARACTERS, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    settings = make_settings(tmp_path, limits={"max_message_chars": 200, "max_body_bytes": 4096})
    model = FakeChatModel()
    with live_server(build_app(settings, backends={"fake": model})) as url:
        yield Server(url, model, settings)
