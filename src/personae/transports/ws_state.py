"""A WebSocket connection's states, their legal moves, and the exception that closes it."""

from __future__ import annotations

import enum


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"  # accepted, waiting for the connect request
    ACTIVE = "active"  # the client spoke within the last heartbeat interval
    IDLE = "idle"  # quiet for a heartbeat interval; closed if quiet until the idle timeout
    DRAINING = "draining"  # closing: answers already queued go out, nothing new is taken
    CLOSED = "closed"


_S = ConnectionState
LEGAL_MOVES: dict[ConnectionState, set[ConnectionState]] = {
    _S.CONNECTING: {_S.ACTIVE, _S.DRAINING, _S.CLOSED},
    _S.ACTIVE: {_S.IDLE, _S.DRAINING, _S.CLOSED},
    _S.IDLE: {_S.ACTIVE, _S.DRAINING, _S.CLOSED},
    _S.DRAINING: {_S.CLOSED},
    _S.CLOSED: set(),
}


class CloseConnection(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
