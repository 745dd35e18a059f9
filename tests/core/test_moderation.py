"""Blocked words: whole words, case-insensitive, block / mask / flag, and streamed masking."""

from __future__ import annotations

import pytest

from personae.core.moderation import Action, WordFilter
from personae.core.safety import ContentPolicy
from personae.errors import ContentBlocked, InvalidInput

WORDS = WordFilter({"block": ["kill switch", "Nuke"], "mask": ["darn", "heck"], "flag": ["refund"]})


def test_matches_are_whole_words_and_case_insensitive() -> None:
    verdict = WORDS.check("Darn it, HECK! a refund? darning heckle unrefunded")
    assert verdict.text == "**** it, ****! a refund? darning heckle unrefunded"
    assert [(h.word, h.action) for h in verdict.hits] == [
        ("darn", Action.MASK),
        ("heck", Action.MASK),
        ("refund", Action.FLAG),
    ]
    assert [h.word for h in verdict.flagged] == ["refund"]
    assert not verdict.blocked


def test_phrases_block_and_the_strictest_list_wins() -> None:
    assert [h.word for h in WORDS.check("flip the Kill Switch").blocked] == ["kill switch"]
    assert not WORDS.check("killswitch").hits
    both = WordFilter({"flag": ["x"], "block": ["x"], "mask": ["x"]})
    assert both.check("x").hits[0].action is Action.BLOCK


def test_an_empty_filter_passes_everything() -> None:
    empty = WordFilter({})
    assert not empty
    assert empty.check("anything").text == "anything"
    masker = empty.masker()
    assert masker.feed("a") + masker.flush() == "a"


def test_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="shout"):
        WordFilter({"shout": ["x"]})


def test_screen_raises_content_blocked() -> None:
    policy = ContentPolicy(WORDS)
    with pytest.raises(ContentBlocked) as caught:
        policy.screen("press the nuke button")
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.code == "content_blocked"
    assert policy.screen("oh darn").text == "oh ****"


@pytest.mark.parametrize(
    "chunks",
    [
        ["oh da", "rn, a re", "fund. darning", " he", "ck"],
        list("oh darn, a refund. darning heck"),
        ["oh darn, a refund. darning heck"],
    ],
)
def test_streamed_text_is_masked_across_chunk_boundaries(chunks: list[str]) -> None:
    masker = WORDS.masker()
    out = "".join(masker.feed(c) for c in chunks) + masker.flush()
    assert out == "oh ****, a refund. darning ****"
    assert [h.word for h in masker.hits] == ["darn", "refund", "heck"]


def test_streamed_masking_holds_back_no_more_than_the_longest_word() -> None:
    masker = WORDS.masker()
    emitted = masker.feed("a long sentence without any listed word")
    assert len(emitted) >= len("a long sentence without any listed word") - WORDS.longest
