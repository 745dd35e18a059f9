"""Chunks cover the whole text, overlap as asked, and quote the original exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personae.core.memory.chunking import chunk_words, windows
from personae.errors import InvalidInput


def test_a_short_text_is_one_chunk_and_a_blank_one_none() -> None:
    (only,) = chunk_words("  hello there  ")
    assert (only.text, only.start, only.end, only.index) == ("hello there", 2, 13, 0)
    assert chunk_words(" \n ") == []


def test_long_text_chunks_overlap_by_the_given_words() -> None:
    text = " ".join(f"w{n}" for n in range(10))
    chunks = chunk_words(text, max_words=4, overlap=1)
    assert [c.text for c in chunks] == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]
    assert all(text[c.start : c.end] == c.text for c in chunks)


@given(
    words=st.lists(st.text(alphabet="abc\u00e9", min_size=1, max_size=4), min_size=1, max_size=60),
    size=st.integers(1, 12),
    data=st.data(),
)
def test_every_word_lands_in_a_chunk_of_at_most_max_words(
    words: list[str], size: int, data: st.DataObject
) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    text = "  ".join(words)
    chunks = chunk_words(text, max_words=size, overlap=overlap)
    assert all(len(c.text.split()) <= size for c in chunks)
    covered = [w for c in chunks for w in c.text.split()]
    assert set(covered) == set(words)
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text)


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (3, 3), (3, -1)])
def test_impossible_windows_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(InvalidInput):
        windows([(0, 1)], size, overlap)
