"""Server-sent events as chat-completion servers send them: the ``data`` of each event, from
a stream of lines (blank line = end of event, ``:`` = comment, other fields ignored).

An event larger than ``max_bytes`` is refused with ``ValueError`` (the backend reports it as
a protocol error): a broken server that never ends an event must not fill the memory."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

MAX_EVENT_BYTES = 1 << 20  # a chunk is a few hundred bytes; a whole completion far less than this


async def event_data(
    lines: AsyncIterable[str], *, max_bytes: int = MAX_EVENT_BYTES
) -> AsyncIterator[str]:
    data: list[str] = []
    size = 0
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data.clear()
                size = 0
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            value = value[1:] if value.startswith(" ") else value
            size += len(value) + 1
            if size > max_bytes:
                raise ValueError(f"an event of more than {max_bytes} characters")
            data.append(value)
    if data:  # a stream that ended without the last blank line
        yield "\n".join(data)
