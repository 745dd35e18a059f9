"""Server-sent events as chat-completion servers send them: the ``data`` of each event (blank
line = end of event, ``:`` = comment, other fields ignored; lines end in LF or CRLF).

``EventDecoder`` takes the bytes as they come off the socket and gives back, per read, every
event that read completed. Under load a read holds several events of a stream (the server
was busy while they arrived), and handling them together is what lets a busy server catch up:
the backend client merges their text into one chunk, so everything downstream (the hub, the
event log, each connection) handles one delta instead of many.

A line or an event larger than ``max_bytes`` is refused with ``ValueError`` (the backend
reports it as a protocol error): a broken server that never ends one must not fill the memory.
"""

from __future__ import annotations

MAX_EVENT_BYTES = 1 << 20  # a chunk is a few hundred bytes; a whole completion far less than this


class EventDecoder:
    def __init__(self, *, max_bytes: int = MAX_EVENT_BYTES) -> None:
        self._max_bytes = max_bytes
        self._partial = b""  # a line not yet ended
        self._data: list[str] = []  # data lines of the event under way
        self._size = 0

    def feed(self, piece: bytes) -> list[str]:
        """The data of each event that ``piece`` ends, in order."""
        lines = (self._partial + piece).split(b"\n") if self._partial else piece.split(b"\n")
        self._partial = lines.pop()
        self._check(self._partial)
        events: list[str] = []
        for line in lines:
            self._check(line)
            self._line(line.rstrip(b"\r").decode("utf-8", "replace"), events)
        return events

    def end(self) -> list[str]:
        """The stream is over: what it left unfinished (no last line end, no blank line)."""
        events: list[str] = []
        if self._partial:
            partial, self._partial = self._partial, b""
            self._line(partial.rstrip(b"\r").decode("utf-8", "replace"), events)
        self._line("", events)
        return events

    def _check(self, line: bytes) -> None:
        if len(line) > self._max_bytes:
            raise ValueError(f"a line of more than {self._max_bytes} bytes")

    def _line(self, line: str, events: list[str]) -> None:
        if not line:
            if self._data:
                events.append("\n".join(self._data))
                self._data.clear()
                self._size = 0
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if name == "data":
            value = value[1:] if value.startswith(" ") else value
            self._size += len(value) + 1
            if self._size > self._max_bytes:
                raise ValueError(f"an event of more than {self._max_bytes} characters")
            self._data.append(value)
