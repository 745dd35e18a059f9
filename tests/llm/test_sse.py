"""The SSE reader: events, comments, multi-line data, a missing last blank line, and an event
that never ends."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from personae.llm.sse import EventDecoder


def read(lines: Iterable[str], **limits: int) -> list[str]:
    """Every event of a stream that arrives a line at a time."""
    decoder = EventDecoder(**limits)
    events = [data for line in lines for data in decoder.feed(line.encode() + b"\n")]
    return events + decoder.end()


def test_events_comments_and_other_fields() -> None:
    stream = [": keep-alive", "", "event: chunk", 'data: {"a": 1}', "", "id: 7", "data:[DONE]", ""]
    assert read(stream) == ['{"a": 1}', "[DONE]"]


def test_data_over_several_lines_is_one_event() -> None:
    assert read(["data: one", "data:  two", "", "", "data: three"]) == [
        "one\n two",
        "three",  # the stream ended without the last blank line
    ]


def test_an_event_that_never_ends_is_refused() -> None:
    endless = ["data: " + "x" * 100] * 50

    with pytest.raises(ValueError, match="more than 1000 characters"):
        read(endless, max_bytes=1000)

    assert len(read(endless, max_bytes=10_000)) == 1


def test_the_decoder_gives_each_read_the_events_it_completed() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: one\n\ndata: tw") == ["one"]
    assert decoder.feed(b"o\r") == []  # a line ending split between two reads
    assert decoder.feed(b"\n\r\ndata: three\n\ndata: four\n\n") == ["two", "three", "four"]
    assert decoder.end() == []


def test_a_character_split_between_reads_is_whole() -> None:
    encoded = "data: café ☕\n\n".encode()
    decoder = EventDecoder()
    cut = encoded.index("☕".encode()) + 1  # inside the three bytes of the cup
    assert decoder.feed(encoded[:cut]) == []
    assert decoder.feed(encoded[cut:]) == ["café ☕"]


def test_what_the_stream_left_unfinished_is_given_at_its_end() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: last") == []
    assert decoder.end() == ["last"]


def test_a_line_never_ended_is_refused_before_it_fills_the_memory() -> None:
    decoder = EventDecoder(max_bytes=100)
    decoder.feed(b"data: " + b"x" * 50)
    with pytest.raises(ValueError, match="a line of more than 100 bytes"):
        decoder.feed(b"x" * 60)
