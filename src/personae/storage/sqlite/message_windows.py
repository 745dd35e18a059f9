"""The newest messages of recently active conversations, held in memory between turns.

Every turn reads its conversation's recent history to build the prompt: up to a whole context
window of rows, the largest read of a turn (1.2 ms of CPU for 100 messages). Between two turns
of one conversation usually nothing changed but the two new messages of the last turn, so a
window once read is kept here with the conversation's ``messages_changed`` counter (SQLite
triggers move it on every edit and deletion, migration 0015) and ``last_seq``. The next read
asks for those two numbers: the counter unmoved, only the messages after ``last_seq`` are read
and added. Whoever changed the conversation (another worker on the same file, a command-line
tool), the counter tells, so a kept window is never stale.

Bounded by the characters of the messages held (``max_chars``): the least recently read
conversations go first. Messages are frozen, so callers can share them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from personae.core.types import Message
from personae.storage.sqlite.connection import Connection
from personae.storage.sqlite.rows import MESSAGE_COLUMNS, message_of

DEFAULT_MAX_CHARS = 4_000_000  # ~4-16 MB of text: thousands of conversations' windows

_WINDOW_STATE = "SELECT messages_changed, last_seq FROM conversations WHERE id = ?"
_RECENT_MESSAGES = (
    f"SELECT * FROM ({MESSAGE_COLUMNS} WHERE conversation_id = ? AND hidden = 0"
    " ORDER BY seq DESC LIMIT ?) ORDER BY seq"
)
# At most ``limit`` of them: as many as that, and the window is read whole instead.
_MESSAGES_AFTER = (
    f"{MESSAGE_COLUMNS} WHERE conversation_id = ? AND seq > ? AND hidden = 0 ORDER BY seq LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class Window:
    """The newest visible messages of a conversation, oldest first, as they were when its
    ``messages_changed`` counter and ``last_seq`` had these values; ``complete`` when they are
    every visible message it had. It keeps as many as the longest read of it asked for, so
    that callers asking for different limits do not shrink it for each other."""

    changed: int
    last_seq: int
    messages: tuple[Message, ...]
    complete: bool
    span: int  # the most messages a read of it asked for: what it keeps at most

    def holds(self, limit: int, added: int) -> bool:
        """Whether the newest ``limit`` messages are in this window plus ``added`` newer."""
        return self.complete or len(self.messages) + added >= limit

    def chars(self) -> int:
        return sum(len(message.content) for message in self.messages)


def read_window(
    conn: Connection, conversation_id: str, limit: int, held: Window | None
) -> tuple[Window | None, bool]:
    """The conversation's window for a read of the newest ``limit`` messages (None: no such
    conversation), and whether it was made of ``held`` and the messages after it. Runs on a
    reader connection."""
    # One snapshot for the counters and the rows: a change between them would otherwise be
    # kept under the counters from before it.
    conn.execute("BEGIN")
    try:
        state = _state(conn, conversation_id)
        if state is None:
            return None, False
        if held is not None and (window := _extended(conn, conversation_id, limit, held, state)):
            return window, True
        rows = conn.execute(_RECENT_MESSAGES, (conversation_id, limit))
        messages = tuple(message_of(r) for r in rows)
        return Window(*state, messages, len(messages) < limit, limit), False
    finally:
        conn.execute("COMMIT")


def window_after_write(conn: Connection, conversation_id: str, held: Window) -> Window | None:
    """``held`` and the messages written after it, read inside the writer's transaction (which
    sees its own writes): what a turn's prompt reads, without a read of its own once its user
    message is stored. None when that is not enough (an edit or a deletion since, or more new
    messages than the window spans): the prompt then reads as usual."""
    state = _state(conn, conversation_id)
    return None if state is None else _extended(conn, conversation_id, held.span, held, state)


def _state(conn: Connection, conversation_id: str) -> tuple[int, int] | None:
    """The conversation's ``messages_changed`` counter and ``last_seq``."""
    row = conn.execute(_WINDOW_STATE, (conversation_id,)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def _extended(
    conn: Connection, conversation_id: str, limit: int, held: Window, state: tuple[int, int]
) -> Window | None:
    """``held`` and the messages after it, if nothing held was edited or deleted since."""
    changed, last_seq = state
    if held.changed != changed:
        return None
    args = (conversation_id, held.last_seq, limit)
    added = [message_of(r) for r in conn.execute(_MESSAGES_AFTER, args)]
    if len(added) >= limit or not held.holds(limit, len(added)):
        return None
    span = max(limit, held.span)
    every = [*held.messages, *added]
    complete = held.complete and len(every) <= span
    return Window(changed, last_seq, tuple(every[-span:]), complete, span)


class MessageWindows:
    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self._max_chars = max_chars
        self._windows: OrderedDict[str, tuple[Window, int]] = OrderedDict()  # id -> (w, chars)
        self._chars = 0
        self.reused = 0  # reads answered by a kept window (and the messages after it)
        self.read_whole = 0  # reads that read the whole window again

    def get(self, conversation_id: str) -> Window | None:
        held = self._windows.get(conversation_id)
        if held is None:
            return None
        self._windows.move_to_end(conversation_id)
        return held[0]

    def peek(self, conversation_id: str) -> Window | None:
        """The window kept, leaving the order alone: safe from the writer's thread (one
        dictionary lookup, and a window is immutable)."""
        held = self._windows.get(conversation_id)
        return None if held is None else held[0]

    def put(self, conversation_id: str, window: Window, *, reused: bool) -> None:
        """Keep ``window`` (``reused``: made of the window kept and the messages after it),
        unless a window read later is kept already (reads of one conversation may overlap;
        its ``last_seq`` and counter only grow)."""
        if reused:
            self.reused += 1
        else:
            self.read_whole += 1
        held = self._windows.get(conversation_id)
        if held is not None and (held[0].changed, held[0].last_seq) > (
            window.changed,
            window.last_seq,
        ):
            return
        self.discard(conversation_id)
        chars = window.chars()
        if chars > self._max_chars:
            return
        self._windows[conversation_id] = (window, chars)
        self._chars += chars
        while self._chars > self._max_chars:
            _, (_, dropped) = self._windows.popitem(last=False)
            self._chars -= dropped

    def discard(self, conversation_id: str) -> None:
        held = self._windows.pop(conversation_id, None)
        if held is not None:
            self._chars -= held[1]

    @property
    def chars(self) -> int:
        return self._chars

    def __len__(self) -> int:
        return len(self._windows)
