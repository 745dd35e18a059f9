"""Acceptance #10.3: a recorded 20-turn conversation (fake backend ``a``) replayed against
another route (fake backend ``b``) gives a report that compares every turn (replies,
prompts, latency, tokens, totals; terminal and escaped HTML), and the live store is exactly
as it was before the replay."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from personae.app.runtime import open_runtime
from personae.core.replay import report_data
from personae.replay.html import render_html
from personae.replay.terminal import render_terminal
from personae.testing import FakeChatModel
from tests.replay.helpers import replay_settings, say
from tests.sqlite_snapshot import sqlite_snapshot

TURNS = 20
MARKUP = "<script>alert('x')</script> & the harbour?"


def user_text(n: int) -> str:
    return MARKUP if n == 3 else f"message number {n}"


async def test_a_recorded_conversation_replayed_on_another_route(tmp_path: Path) -> None:
    settings = replay_settings(tmp_path)
    a, b = FakeChatModel(name="a"), FakeChatModel(name="b")
    for n in range(TURNS):
        a.enqueue(f"A says {n}.")
        b.enqueue(f"B says {n}.")
    async with open_runtime(settings, backends={"a": a, "b": b}) as runtime:
        first = await say(runtime, user_text(0))
        conversation_id = first.conversation_id
        for n in range(1, TURNS):
            await say(runtime, user_text(n), conversation_id)
        await runtime.service.recorder.drain()
        assert runtime.turn_records is not None
        assert runtime.replays is not None
        originals = await runtime.turn_records.for_conversation(conversation_id)
        assert len(originals) == TURNS
        before = sqlite_snapshot(settings.database_path)

        plan = runtime.replays.plan(conversation_id, route="b")
        report = await runtime.replays.run(plan)

        assert sqlite_snapshot(settings.database_path) == before  # the live store: untouched
    assert not b.pending  # every user message was replayed on b, once

    assert report.plan.label == "route b"
    assert [t.index for t in report.turns] == list(range(1, TURNS + 1))
    for n, turn in enumerate(report.turns):
        assert turn.user_text == user_text(n)
        assert turn.original.reply == f"A says {n}."
        assert turn.replayed.reply == f"B says {n}."
        assert (turn.original.backend, turn.replayed.backend) == ("a", "b")
        assert turn.replayed.error is None
        assert not turn.same_reply
        assert turn.replayed.latency_ms is not None
        assert turn.replayed.completion_tokens == 3
    # The first turn's prompt is the same; later ones differ by the history each side saw.
    assert report.turns[0].prompt_diff == ()
    second = report.turns[1].prompt_diff
    assert second is not None
    assert "-A says 0." in second
    assert "+B says 0." in second
    totals = report.totals
    assert (totals.turns, totals.changed_replies, totals.failed) == (TURNS, TURNS, 0)
    assert totals.changed_prompts == TURNS - 1
    assert totals.replayed_tokens == sum(
        (t.replayed.prompt_tokens or 0) + (t.replayed.completion_tokens or 0) for t in report.turns
    )

    html = render_html(report)
    assert "B says 19." in html
    assert "A says 19." in html
    assert "<script>alert" not in html  # the user's markup is shown, not run
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; the harbour?" in html
    assert '<span class="add">+B says 0.</span>' in html

    console = Console(record=True, width=200)
    render_terminal(report, console)
    text = console.export_text()
    assert f"{TURNS} turns: {TURNS} replies changed, {TURNS - 1} prompts changed, 0 failed" in text
    assert "B says 7." in text
    assert "+B says 0." in text

    data = report_data(report)
    assert data["totals"]["changed_replies"] == TURNS
    assert data["turns"][1]["replayed"]["backend"] == "b"
