"""Who speaks next in a group chat: mentions, talkativeness, a seeded draw, mute and force."""

from __future__ import annotations

import random

import pytest

from personae.core.characters import Character
from personae.core.group import Member, mentioned, next_speakers, talkativeness


def character(cid: str, name: str, chattiness: object = None, **fields: object) -> Character:
    extensions = {} if chattiness is None else {"talkativeness": chattiness}
    return Character(id=cid, name=name, extensions=extensions, **fields)  # type: ignore[arg-type]


ARIA = character("aria", "Aria", 0.9)
KIT = character("kit", "Kit", 0.1, nickname="Kitty")
MIRA = character("mira", "Mira", "0.5")  # SillyTavern writes it as a string too
GROUP = [Member(ARIA), Member(KIT), Member(MIRA)]


def speakers(text: str, seed: int = 7, members: list[Member] = GROUP, **kw: object) -> list[str]:
    return next_speakers(members, text, rng=random.Random(seed), **kw)  # type: ignore[arg-type]


def test_mentioned_characters_speak_first_in_the_order_they_are_named() -> None:
    assert mentioned(GROUP, "Mira, what does aria think? And kitty?") == ["mira", "aria", "kit"]
    assert mentioned(GROUP, "Kitchen talk, miranda and arias") == []  # whole words only
    order = speakers("Mira and Kit, your turn.")
    assert order[:2] == ["mira", "kit"]


def test_the_same_seed_gives_the_same_order_and_talkativeness_decides_how_often() -> None:
    assert speakers("Hello all") == speakers("Hello all")
    counts = {"aria": 0, "kit": 0, "mira": 0}
    for seed in range(2000):
        for cid in speakers("Hello all", seed=seed):
            counts[cid] += 1
    # Aria (0.9) speaks almost always, Mira (0.5) about half the time, Kit (0.1) rarely
    # (plus the times it is the one picked because nobody else spoke).
    assert counts["aria"] > 1700
    assert 850 < counts["mira"] < 1150
    assert counts["kit"] < 350


def test_nobody_drawn_means_one_picked_at_random() -> None:
    shy = [Member(character(c, c.title(), 0.0)) for c in ("a", "b", "c")]
    picks = {tuple(speakers("hi", seed=s, members=shy)) for s in range(50)}
    assert picks == {("a",), ("b",), ("c",)}


def test_muted_characters_speak_only_when_forced() -> None:
    members = [Member(ARIA, muted=True), Member(KIT), Member(MIRA)]
    for seed in range(200):
        assert "aria" not in speakers("Aria?", seed=seed, members=members)
    assert speakers("anything", members=members, forced="aria") == ["aria"]
    with pytest.raises(ValueError, match="not in this group"):
        speakers("x", forced="zed")


def test_the_last_speaker_does_not_answer_itself() -> None:
    for seed in range(200):
        assert "aria" not in speakers("as Aria said", seed=seed, last_speaker="aria")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 0.5), (0.2, 0.2), ("0.8", 0.8), ("loud", 0.5), (7, 1.0), (-1, 0.0), ("nan", 0.5)],
)
def test_talkativeness_is_read_as_sillytavern_writes_it(raw: object, expected: float) -> None:
    assert talkativeness(character("x", "X", raw)) == expected
