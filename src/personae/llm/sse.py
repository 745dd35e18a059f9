"""Server-sent events as chat-completion servers send them: the ``data`` of each event, from
a stream of lines (blank line = end of event, ``:`` = comment, other fields ignored)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def event_data(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data.clear()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:  # a stream that ended without the last blank line
        yield "\n".join(data)
