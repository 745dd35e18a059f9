"""Replays beyond the happy path: a replayed turn that fails is a row with its error and the
replay goes on (later turns still see its message); the memory an original turn had is
given to its replayed turn; what cannot be replayed is refused before anything runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from personae.app.replay import ServerReplays
from personae.app.runtime import Runtime, open_runtime
from personae.core.memory.stage import PROFILE_HEADING
from personae.core.turn_record import TurnRecord
from personae.errors import BackendUnavailable, ConversationNotFound, InvalidInput
from personae.testing import FakeChatModel
from tests.replay.helpers import replay_settings, say


@dataclass
class Rig:
    runtime: Runtime
    a: FakeChatModel
    b: FakeChatModel
    conversation_id: str = ""

    @property
    def replays(self) -> ServerReplays:
        assert self.runtime.replays is not None
        return self.runtime.replays


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = replay_settings(tmp_path, replay={"record_rate": 1.0, "max_turns": 5})
    a, b = FakeChatModel(name="a"), FakeChatModel(name="b")
    async with open_runtime(settings, backends={"a": a, "b": b}) as runtime:
        rig = Rig(runtime, a, b)
        done = await say(runtime, "message 1")
        rig.conversation_id = done.conversation_id
        for n in (2, 3):
            await say(runtime, f"message {n}", rig.conversation_id)
        await runtime.service.recorder.drain()
        yield rig


async def test_a_failed_turn_is_a_row_and_the_replay_goes_on(rig: Rig) -> None:
    rig.b.enqueue("B one.")
    rig.b.enqueue("never", error=BackendUnavailable("b is down", backend="b"))
    rig.b.enqueue("B three.")
    report = await rig.replays.run(rig.replays.plan(rig.conversation_id, route="b"))
    replies = [(t.replayed.reply, t.replayed.error) for t in report.turns]
    assert replies[0] == ("B one.", None)
    assert replies[1][0] == ""
    assert "b is down" in (replies[1][1] or "")
    assert replies[2] == ("B three.", None)
    assert report.totals.failed == 1
    # The failed turn's message stayed in the replayed history.
    assert "message 2" in [m.content for m in rig.b.requests[-1].messages]


async def test_the_original_turn_s_memory_is_given_to_the_replayed_one(rig: Rig) -> None:
    records = rig.runtime.turn_records
    assert records is not None
    [first, *_] = await records.for_conversation(rig.conversation_id)
    note = f"{PROFILE_HEADING}\n- likes tea"
    # As if memory had recalled a fact for the first turn when it ran.
    changed = TurnRecord(**{**_fields(first), "memory_note": note})
    await records.add([changed])
    report = await rig.replays.run(rig.replays.plan(rig.conversation_id, route="b"))
    first_prompt = [m.content for m in rig.b.requests[0].messages]
    assert note in first_prompt
    assert note not in [m.content for m in rig.b.requests[1].messages]
    diff = report.turns[0].prompt_diff  # the record was edited, its prompt was not
    assert diff is not None
    assert f"+{PROFILE_HEADING}" in diff


def _fields(record: TurnRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in TurnRecord.__dataclass_fields__}


async def test_what_cannot_be_replayed_is_refused_before_anything_runs(rig: Rig) -> None:
    with pytest.raises(ConversationNotFound):
        await rig.replays.run(rig.replays.plan("conv_nope", route="b"))
    with pytest.raises(InvalidInput, match="unknown backend"):
        await rig.replays.run(rig.replays.plan(rig.conversation_id, route="zzz"))
    group = await rig.runtime.store.create_group(owner="sam", characters=["vera", "vera2"])
    with pytest.raises(InvalidInput, match="group"):
        await rig.replays.run(rig.replays.plan(group.id, route="b"))
    for n in range(4, 7):
        await say(rig.runtime, f"message {n}", rig.conversation_id)
    with pytest.raises(InvalidInput, match="at most 5"):
        await rig.replays.run(rig.replays.plan(rig.conversation_id, route="b"))
    assert not rig.b.requests
