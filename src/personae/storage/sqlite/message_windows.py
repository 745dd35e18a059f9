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
from collections.abc import Sequence
from dataclasses import dataclass

from personae.core.types import Message

DEFAULT_MAX_CHARS = 4_000_000  # ~4-16 MB of text: thousands of conversations' windows


@dataclass(frozen=True, slots=True)
class Window:
    """The newest visible messages of a conversation, oldest first, as they were when its
    ``messages_changed`` counter and ``last_seq`` had these values; ``complete`` when they are
    every visible message it had."""

    changed: int
    last_seq: int
    messages: tuple[Message, ...]
    complete: bool

    def holds(self, limit: int, added: int = 0) -> bool:
        """Whether the newest ``limit`` messages are in this window plus ``added`` newer."""
        return self.complete or len(self.messages) + added >= limit

    def chars(self) -> int:
        return sum(len(message.content) for message in self.messages)


def newest(messages: Sequence[Message], limit: int) -> list[Message]:
    return list(messages[-limit:]) if limit > 0 else []


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
