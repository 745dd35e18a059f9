from __future__ import annotations

import pytest

from personae.core.sessions import ConversationSession, SessionRegistry, SessionState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> SessionRegistry:
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
    registry: SessionRegistry, clock: Clock
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
    registry: SessionRegistry, clock: Clock
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
    with pytest.raises(RuntimeError, match="illegal session transition"):
        session.move(SessionState.ACTIVE)
    with pytest.raises(RuntimeError):
        ConversationSession("c2", "sam").move(SessionState.EXPIRED)  # active -> expired
