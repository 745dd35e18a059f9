"""``personae replay``: the terminal table and the HTML report of a replay on another route;
a bad option is a clear error and no report is written. The runtime is the real one, its
backends scripted fakes (passed where a test passes them to ``open_runtime``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from personae.app.runtime import Runtime, open_runtime
from personae.cli import cli
from personae.cli import replay as replay_cli
from personae.testing import FakeChatModel
from tests.replay.helpers import replay_settings, say


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    settings = replay_settings(tmp_path)
    (tmp_path / "personae.yaml").write_text(
        yaml.safe_dump(
            {
                "data_dir": str(settings.data_dir),
                "characters_dir": str(settings.characters_dir),
                "watch_characters": False,
                "routes": {"default": ["a", "b"]},
            }
        ),
        encoding="utf-8",
    )
    a = FakeChatModel(name="a", default_reply="Aye from a.")
    b = FakeChatModel(name="b", default_reply="<b>Bold</b> from b.")
    backends = {"a": a, "b": b}

    async def record() -> str:
        async with open_runtime(settings, backends=backends) as runtime:
            done = await say(runtime, "first")
            await say(runtime, "second", done.conversation_id)
            await runtime.service.recorder.drain()
            return done.conversation_id

    conversation_id = asyncio.run(record())

    @asynccontextmanager
    async def with_fakes(settings: Any, **kw: Any) -> AsyncIterator[Runtime]:
        async with open_runtime(settings, backends=backends, **kw) as runtime:
            yield runtime

    monkeypatch.setattr(replay_cli, "open_runtime", partial(with_fakes))
    return conversation_id


def test_replay_prints_the_table_and_writes_the_html(tmp_path: Path, recorded: str) -> None:
    report = tmp_path / "out" / "report.html"
    args = ["replay", "--conversation", recorded, "--route", "b", "--param", "temperature=0.3"]
    result = CliRunner().invoke(cli, [*args, "--html", str(report), "--config-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "route b, temperature=0.3" in out
    assert "Aye from a." in out
    assert "<b>Bold</b> from b." in out
    assert "2 turns: 2 replies changed, 1 prompts changed, 0 failed" in out
    assert f"HTML report: {report}" in " ".join(out.split())
    page = report.read_text(encoding="utf-8")
    assert "&lt;b&gt;Bold&lt;/b&gt; from b." in page
    assert "<b>Bold</b>" not in page


def test_a_bad_option_is_a_clear_error(tmp_path: Path, recorded: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["replay", "--conversation", recorded, "--param", "heat=3", "--config-dir", str(tmp_path)],
    )
    assert result.exit_code == 1
    assert "replay failed: unknown parameter(s) heat" in result.output
    assert not (tmp_path / "data" / "replays").exists()
