"""``personae trace <turn-id>``: the recorded turn's prompt as sent, the lore and memory that
went into it, the route with its failover, and the stage timings; ``--json`` is the record
the admin API answers with; an unknown turn is a clear error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from personae.app.runtime import open_runtime
from personae.cli import cli
from personae.errors import BackendUnavailable
from personae.testing import FakeChatModel
from tests.replay.helpers import replay_settings, say


def recorded_turn(tmp_path: Path) -> str:
    """One turn whose primary backend failed (so ``b`` answered after failover); the config
    folder's personae.yaml points the CLI at the same database."""
    settings = replay_settings(tmp_path)
    (tmp_path / "personae.yaml").write_text(
        yaml.safe_dump(
            {"data_dir": str(settings.data_dir), "characters_dir": str(settings.characters_dir)}
        ),
        encoding="utf-8",
    )
    a, b = FakeChatModel(name="a"), FakeChatModel(name="b")
    a.enqueue("never", error=BackendUnavailable("connection refused", backend="a"))
    b.enqueue("The harbour is frozen, captain.")

    async def run() -> str:
        async with open_runtime(settings, backends={"a": a, "b": b}) as runtime:
            done = await say(runtime, "Can we sail into the harbour? [bold]now[/bold]")
            await runtime.service.recorder.drain()
            return done.message.id

    return asyncio.run(run())


def test_trace_prints_prompt_lore_route_and_timings(tmp_path: Path) -> None:
    turn_id = recorded_turn(tmp_path)
    result = CliRunner().invoke(cli, ["trace", turn_id, "--config-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"turn {turn_id}" in out
    assert "character vera" in out
    # the prompt, as sent
    assert "prompt (" in out
    assert "[user" in out
    assert "Can we sail into the harbour? [bold]now[/bold]" in out  # text, not markup
    assert "Vera is a harbour pilot in the port of Veth." in out
    # the lore it activated
    assert "- harbour" in out
    assert "The harbour of Veth is frozen in winter." in out
    # the route: a failed, b answered after failover
    assert "chain a > b: answered by b, after failover" in out
    assert "failed: a: connection refused" in out
    # the timings of each stage
    for stage in ("open", "skills", "behaviour", "prompt", "generate", "total"):
        assert stage in out

    as_json = CliRunner().invoke(cli, ["trace", turn_id, "--json", "--config-dir", str(tmp_path)])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["turn_id"] == turn_id
    assert data["lore"] == ["harbour"]
    assert data["routes"][0]["backend"] == "b"
    assert data["routes"][0]["failed_over"] is True
    assert [s["name"] for s in data["stages"]][-1] == "generate"


def test_an_unknown_turn_is_a_clear_error(tmp_path: Path) -> None:
    recorded_turn(tmp_path)
    result = CliRunner().invoke(cli, ["trace", "msg_nope", "--config-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no record of turn 'msg_nope'" in result.output
