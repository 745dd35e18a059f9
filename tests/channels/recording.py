"""A platform on the far side of the ``Channel`` port that records what it is asked and fails
as scripted: for the delivery machinery's own tests (the adapters have real fake servers)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from personae.channels.errors import PlatformError
from personae.core.channels import Receive
from personae.core.ports import Channel


class RecordingChannel(Channel):
    def __init__(self, name: str = "rec", *, edits: bool = True, max_chars: int = 4096) -> None:
        self.name = name
        self.edits = edits
        self.max_chars = max_chars
        self.min_edit_interval_s = 0.0
        self.calls: list[tuple[str, ...]] = []  # ("send", chat, text) / ("edit", chat, id, text)
        self.faults: deque[PlatformError] = deque()  # raised by the next calls, in order
        self.listen_faults: deque[PlatformError] = deque()
        self.typings = 0
        self._ids = 0

    def _fail(self) -> None:
        if self.faults:
            raise self.faults.popleft()

    async def listen(self, receive: Receive, connected: Callable[[], None]) -> None:
        if self.listen_faults:
            raise self.listen_faults.popleft()
        connected()
        await asyncio.Event().wait()

    async def send(self, chat: str, text: str, *, reply_to: str | None = None) -> str:
        self._fail()
        self._ids += 1
        self.calls.append(("send", chat, text))
        return str(self._ids)

    async def edit(self, chat: str, message_id: str, text: str) -> None:
        self._fail()
        self.calls.append(("edit", chat, message_id, text))

    async def typing(self, chat: str) -> None:
        self.typings += 1

    def sent_texts(self) -> list[str]:
        return [c[2] for c in self.calls if c[0] == "send"]
