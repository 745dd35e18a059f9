"""The SSE reader: events, comments, multi-line data, a missing last blank line, and an event
that never ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest

from personae.llm.sse import event_data


async def lines(items: Iterable[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


async def read(items: Iterable[str], **limits: int) -> list[str]:
    return [data async for data in event_data(lines(items), **limits)]


async def test_events_comments_and_other_fields() -> None:
    stream = [": keep-alive", "", "event: chunk", 'data: {"a": 1}', "", "id: 7", "data:[DONE]", ""]
    assert await read(stream) == ['{"a": 1}', "[DONE]"]


async def test_data_over_several_lines_is_one_event() -> None:
    assert await read(["data: one", "data:  two", "", "", "data: three"]) == [
        "one\n two",
        "three",  # the stream ended without the last blank line
    ]


async def test_an_event_that_never_ends_is_refused() -> None:
    endless = ["data: " + "x" * 100] * 50

    with pytest.raises(ValueError, match="more than 1000 characters"):
        await read(endless, max_bytes=1000)

    assert len(await read(endless, max_bytes=10_000)) == 1
