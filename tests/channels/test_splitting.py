"""Long replies split at sentence boundaries within the platforms' real limits."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from personae.channels.splitting import split_message, utf16_length

TELEGRAM = 4096


def sentences(n: int) -> str:
    return " ".join(f"Sentence number {i} tells a little more of the story." for i in range(n))


def test_a_short_reply_is_one_part() -> None:
    assert split_message("  Hello there.  ", TELEGRAM) == ["Hello there."]


def test_a_long_reply_splits_at_telegrams_limit_on_sentence_ends() -> None:
    text = sentences(200)  # about 10,800 characters
    parts = split_message(text, TELEGRAM)
    assert len(parts) == 3
    assert all(len(p) <= TELEGRAM for p in parts)
    assert all(p.endswith("story.") for p in parts)  # every cut is after a full sentence
    assert " ".join(parts) == text
    assert len(parts[0]) > TELEGRAM // 2


def test_without_sentence_ends_it_cuts_at_spaces_then_hard() -> None:
    words = " ".join(["word"] * 3000)
    parts = split_message(words, TELEGRAM)
    assert all(len(p) <= TELEGRAM and not p.startswith(" ") for p in parts)
    assert " ".join(parts) == words
    blob = "x" * 9000
    assert [len(p) for p in split_message(blob, TELEGRAM)] == [4096, 4096, 808]


def test_line_breaks_count_as_boundaries() -> None:
    text = ("a" * 60 + "\n") * 10
    parts = split_message(text, 200)
    assert all(len(p) <= 200 and re.fullmatch(r"(a{60}\n?)+", p) for p in parts)


def test_telegram_counts_utf16_units_so_emoji_cost_two() -> None:
    text = "\U0001f680" * 3000  # 3000 rockets, 6000 UTF-16 units
    parts = split_message(text, TELEGRAM, utf16_length)
    assert [utf16_length(p) for p in parts] == [4096, 1904]
    assert "".join(parts) == text


@given(st.text(min_size=1, max_size=3000), st.integers(min_value=1, max_value=500))
def test_parts_fit_are_never_empty_and_keep_every_non_space_character(
    text: str, limit: int
) -> None:
    parts = split_message(text, limit)
    assert all(p and len(p) <= limit for p in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())
