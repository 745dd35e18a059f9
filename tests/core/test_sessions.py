from __future__ import annotations

import pytest

from personae.core.sessions import ConversationSession, SessionRegistry, SessionState
from personae.errors import IllegalTransition
from tests.conftest import ManualClock


@pytest.fixture
def registry(clock: ManualClock) -> SessionRegistry:
    return SessionRegistry(idle_expiry_s=60, clock=clock)


def test_a_session_is_active_while_a_turn_runs_or_someone_watches(
    registry: SessionRegistry,
) -> None:
    registry.begin_turn("c1", "sam")
    registry.add_watcher("c1", "sam")
    session = registry.get("c1")
    assert session is not None
    assert session.state is SessionState.ACTIVE
    registry.end_turn("c1")
    assert session.state is SessionState.ACTIVE  # still watched
    registry.remove_watcher("c1")
    assert session.state is SessionState.IDLE
    registry.begin_turn("c1", "sam")
    assert session.state is SessionState.ACTIVE
    assert session.turns_total == 2


async def test_idle_sessions_expire_run_hooks_and_are_forgotten(
    registry: SessionRegistry, clock: ManualClock
) -> None:
    expired: list[str] = []

    async def remember(session: ConversationSession) -> None:
        assert session.state is SessionState.EXPIRED
        expired.append(session.conversation_id)

    async def broken(session: ConversationSession) -> None:
        raise RuntimeError("the summariser fell over")

    registry.on_expire(broken)
    registry.on_expire(remember)
    for conversation in ("old", "recent", "busy"):
        registry.begin_turn(conversation, "sam")
    registry.end_turn("old")
    clock.now += 50
    registry.end_turn("recent")
    clock.now += 20  # old: idle 70 s; recent: idle 20 s; busy: still in a turn

    swept = await registry.sweep()
    assert [s.conversation_id for s in swept] == ["old"]
    assert swept[0].state is SessionState.CLOSED
    assert expired == ["old"]  # a failing hook did not stop the next one
    assert registry.get("old") is None
    assert len(registry) == 2
    clock.now += 60
    assert [s.conversation_id for s in await registry.sweep()] == ["recent"]


async def test_a_conversation_that_comes_back_gets_a_fresh_session(
    registry: SessionRegistry, clock: ManualClock
) -> None:
    registry.begin_turn("c1", "sam")
    registry.end_turn("c1")
    clock.now += 61
    await registry.sweep()
    registry.begin_turn("c1", "sam")
    session = registry.get("c1")
    assert session is not None
    assert (session.state, session.turns_total) == (SessionState.ACTIVE, 1)


def test_illegal_transitions_raise() -> None:
    session = ConversationSession("c1", "sam", state=SessionState.CLOSED)
    with pytest.raises(IllegalTransition, match="CLOSED"):
        session.move(SessionState.ACTIVE)
    with pytest.raises(IllegalTransition):
        ConversationSession("c2", "sam").move(SessionState.EXPIRED)  # active -> expired
