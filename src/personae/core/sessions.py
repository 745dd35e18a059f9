"""Conversation sessions: the in-memory life of a conversation between its turns.

A session is ACTIVE while a turn runs or a device watches the conversation, IDLE once neither
is true, and EXPIRED after ``idle_expiry_s`` of idleness. Expiry runs the registered hooks
(the memory work writes its summaries there) and then the session is CLOSED and forgotten,
so a server that has seen millions of conversations holds state only for the live ones.

    ACTIVE ──(no turn, no watcher)──▶ IDLE ──(idle_expiry_s)──▶ EXPIRED ──▶ CLOSED
       ▲                               │
       └──────(turn or watcher)────────┘
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from personae.errors import IllegalTransition

log = structlog.get_logger(__name__)


class SessionState(enum.Enum):
    ACTIVE = "active"
    IDLE = "idle"
    EXPIRED = "expired"
    CLOSED = "closed"


_LEGAL: dict[SessionState, set[SessionState]] = {
    SessionState.ACTIVE: {SessionState.IDLE, SessionState.CLOSED},
    SessionState.IDLE: {SessionState.ACTIVE, SessionState.EXPIRED, SessionState.CLOSED},
    SessionState.EXPIRED: {SessionState.CLOSED},
    SessionState.CLOSED: set(),
}


@dataclass(slots=True)
class ConversationSession:
    conversation_id: str
    user: str
    state: SessionState = SessionState.ACTIVE
    turns: int = 0
    watchers: int = 0
    idle_since: float = 0.0
    turns_total: int = field(default=0)  # turns run in this session's lifetime

    def move(self, to: SessionState) -> None:
        if to is self.state:
            return
        if to not in _LEGAL[self.state]:
            raise IllegalTransition(f"session {self.conversation_id}", self.state, to)
        self.state = to


ExpiryHook = Callable[[ConversationSession], Awaitable[None]]


class SessionRegistry:
    def __init__(
        self, *, idle_expiry_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_expiry_s = idle_expiry_s
        self._clock = clock
        self._sessions: dict[str, ConversationSession] = {}
        self._hooks: list[ExpiryHook] = []

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, conversation_id: str) -> ConversationSession | None:
        return self._sessions.get(conversation_id)

    def on_expire(self, hook: ExpiryHook) -> None:
        self._hooks.append(hook)

    def begin_turn(self, conversation_id: str, user: str) -> None:
        session = self._wake(conversation_id, user)
        session.turns += 1
        session.turns_total += 1

    def end_turn(self, conversation_id: str) -> None:
        session = self._sessions.get(conversation_id)
        if session is not None:
            session.turns -= 1
            self._settle(session)

    def add_watcher(self, conversation_id: str, user: str) -> None:
        self._wake(conversation_id, user).watchers += 1

    def remove_watcher(self, conversation_id: str) -> None:
        session = self._sessions.get(conversation_id)
        if session is not None:
            session.watchers -= 1
            self._settle(session)

    async def sweep(self) -> list[ConversationSession]:
        """Expire the sessions idle for ``idle_expiry_s``: run the hooks, then forget them. A
        hook that fails is logged and does not keep the session alive."""
        now = self._clock()
        due = [
            s
            for s in self._sessions.values()
            if s.state is SessionState.IDLE and now - s.idle_since >= self.idle_expiry_s
        ]
        for session in due:
            session.move(SessionState.EXPIRED)
            for hook in self._hooks:
                try:
                    await hook(session)
                except Exception:
                    log.exception(
                        "session expiry hook failed", conversation=session.conversation_id
                    )
            session.move(SessionState.CLOSED)
            if self._sessions.get(session.conversation_id) is session:
                del self._sessions[session.conversation_id]
        return due

    def _wake(self, conversation_id: str, user: str) -> ConversationSession:
        session = self._sessions.get(conversation_id)
        if session is None or session.state in {SessionState.EXPIRED, SessionState.CLOSED}:
            session = ConversationSession(conversation_id, user)
            self._sessions[conversation_id] = session
        session.move(SessionState.ACTIVE)
        return session

    def _settle(self, session: ConversationSession) -> None:
        if session.turns <= 0 and session.watchers <= 0 and session.state is SessionState.ACTIVE:
            session.move(SessionState.IDLE)
            session.idle_since = self._clock()
