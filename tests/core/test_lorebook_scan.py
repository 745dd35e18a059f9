"""Activation rules, one test each: what a scan of the recent chat activates."""

from __future__ import annotations

import pytest

from personae.core.lorebook import MAX_SCAN_CHARS, Lorebook
from tests.core.lorebook_helpers import active, book, entry

# --- keys ------------------------------------------------------------------------------------


def test_a_plain_key_activates_its_entry_as_a_substring_case_insensitively() -> None:
    lore = book(entry("dragon"), entry("castle"))
    assert active(lore, "A DRAGONfly landed.") == ["dragon"]
    assert active(lore, "Nothing here.") == []


def test_a_key_of_several_words_and_any_of_several_keys() -> None:
    lore = book(entry("harbour", keys=["old harbour", "the docks"]))
    assert active(lore, "We walked to the docks.") == ["harbour"]
    assert active(lore, "The old  harbour.") == []  # the words as written


def test_a_slashed_key_is_a_regex_with_javascript_flags() -> None:
    lore = book(entry("ship", keys=[r"/\bships?\b/i"]), entry("exact", keys=[r"/^Ahoy/"]))
    assert active(lore, "Two SHIPS sailed.") == ["ship"]
    assert active(lore, "Shipwright at work.") == []  # \b holds
    assert active(lore, "Ahoy there") == ["exact"]
    assert active(lore, "ahoy there") == []  # no i flag: case counts


def test_use_regex_makes_bare_keys_regexes_with_the_entry_case() -> None:
    lore = book(entry("hail", keys=["^hail(stones?)?$"], use_regex=True))
    assert active(lore, "Hailstones") == ["hail"]
    assert active(lore, "hail is coming") == []


def test_sillytavern_entries_keep_bare_keys_plain_although_it_writes_use_regex() -> None:
    st = {"selectiveLogic": 0, "display_index": 0}
    lore = book(entry("cpp", keys=["C++"], use_regex=True, extensions=st))
    assert active(lore, "I write C++ at night.") == ["cpp"]


def test_case_sensitive_entries_match_the_case_as_written() -> None:
    lore = book(
        entry("Rose", keys=["Rose"], case_sensitive=True),
        entry("rose", keys=["Rose"], case_sensitive=False),
    )
    assert active(lore, "a rose by any name") == ["rose"]
    assert active(lore, "Rose said hi") == ["Rose", "rose"]


def test_sillytavern_case_sensitivity_and_whole_words_from_extensions() -> None:
    lore = book(
        entry("cat", keys=["cat"], extensions={"match_whole_words": True}),
        entry("Cat", keys=["Cat"], extensions={"case_sensitive": True}),
    )
    assert active(lore, "a category of things") == []
    assert active(lore, "the cat, asleep") == ["cat"]
    assert active(lore, "Cat.") == ["cat", "Cat"]


# --- secondary keys and their logic ----------------------------------------------------------

SECONDARY = ["night", "moon"]


@pytest.mark.parametrize(
    ("logic", "text", "expected"),
    [
        (0, "wolf at night", True),  # AND_ANY: one secondary key is enough
        (0, "wolf", False),
        (3, "wolf at night under the moon", True),  # AND_ALL: every one
        (3, "wolf at night", False),
        (2, "wolf", True),  # NOT_ANY: none of them
        (2, "wolf at night", False),
        (1, "wolf at night", True),  # NOT_ALL: not every one
        (1, "wolf at night under the moon", False),
    ],
)
def test_selective_logic(logic: int, text: str, expected: bool) -> None:
    lore = book(
        entry(
            "wolf",
            selective=True,
            secondary_keys=SECONDARY,
            extensions={"selectiveLogic": logic},
        )
    )
    assert active(lore, text) == (["wolf"] if expected else [])


def test_selective_logic_by_name_and_the_spec_default() -> None:
    by_name = book(
        entry(
            "wolf",
            selective=True,
            secondary_keys=SECONDARY,
            extensions={"selectiveLogic": "and_all"},
        )
    )
    assert active(by_name, "wolf, night") == []
    spec = book(entry("wolf", selective=True, secondary_keys=SECONDARY))  # AND_ANY
    assert active(spec, "wolf, moon") == ["wolf"]
    assert active(spec, "wolf") == []


def test_secondary_keys_are_ignored_unless_selective() -> None:
    lore = book(entry("wolf", selective=False, secondary_keys=SECONDARY))
    assert active(lore, "wolf") == ["wolf"]
    assert "secondary_keys are ignored" in lore.warnings[0]


# --- constant, enabled, scan depth -----------------------------------------------------------


def test_a_constant_entry_is_always_active() -> None:
    lore = book(entry("law", keys=[], constant=True), entry("other"))
    assert active(lore, "anything at all") == ["law"]
    assert active(lore) == ["law"]


def test_a_disabled_entry_never_activates_even_when_constant() -> None:
    lore = book(entry("gone", enabled=False), entry("off", constant=True, enabled=False))
    assert active(lore, "gone and off") == []


def test_an_entry_with_empty_content_is_never_inserted() -> None:
    lore = book(entry("blank", content="@@depth 2\n\n"))
    assert active(lore, "blank") == []


def test_scan_depth_limits_the_messages_scanned() -> None:
    lore = book(entry("dragon"), scan_depth=2)
    assert active(lore, "a dragon!", "hello", "bye") == []
    assert active(lore, "hello", "a dragon!", "bye") == ["dragon"]
    assert active(book(entry("dragon"), scan_depth=0), "dragon") == []
    # The default is 2: the last reply and the new message.
    assert active(book(entry("dragon")), "dragon", "x", "y") == []


def test_keys_never_match_across_two_messages() -> None:
    lore = book(entry("sea", keys=["deep sea"]), scan_depth=5)
    assert active(lore, "so deep", "sea") == []


def test_the_scanned_text_is_capped_keeping_the_newest() -> None:
    lore = book(entry("old"), entry("new"), scan_depth=3)
    assert active(lore, "old" + "x" * MAX_SCAN_CHARS, "new") == ["new"]


def test_results_come_in_book_order() -> None:
    lore = book(entry("b", insertion_order=1), entry("a", insertion_order=0))
    assert active(lore, "a b") == ["b", "a"]


# --- recursion -------------------------------------------------------------------------------


def chain(**settings: object) -> Lorebook:
    return book(
        entry("king", content="The king wears the crown."),
        entry("crown", content="The crown was forged by the smith."),
        entry("smith", content="The smith lives by the river."),
        entry("river", content="Nothing leads on."),
        **settings,
    )


def test_without_recursive_scanning_content_activates_nothing() -> None:
    assert active(chain(recursive_scanning=False), "the king") == ["king"]


def test_recursive_scanning_follows_content_up_to_the_limit() -> None:
    lore = chain(recursive_scanning=True)
    assert active(lore, "the king") == ["king", "crown", "smith", "river"]
    assert active(lore, "the king", max_recursion=1) == ["king", "crown"]
    assert active(lore, "the king", max_recursion=2) == ["king", "crown", "smith"]
    assert active(lore, "the king", max_recursion=0) == ["king"]


def test_recursion_scans_chat_and_lore_together_for_secondary_keys() -> None:
    lore = book(
        entry("king", content="The crown is heavy."),
        entry("heir", keys=["crown"], selective=True, secondary_keys=["prince"]),
        recursive_scanning=True,
    )
    assert active(lore, "the prince and the king") == ["king", "heir"]
    assert active(lore, "the king") == ["king"]


def test_sillytavern_recursion_switches() -> None:
    lore = book(
        entry("king", content="The crown.", extensions={"prevent_recursion": True}),
        entry("crown"),
        entry("queen", content="The sceptre."),
        entry("sceptre", extensions={"exclude_recursion": True}),
        recursive_scanning=True,
    )
    assert active(lore, "king and queen") == ["king", "queen"]
    assert active(lore, "the sceptre") == ["sceptre"]  # the chat still activates it


def test_recursion_terminates_on_cycles() -> None:
    lore = book(
        entry("day", content="Night follows."),
        entry("night", content="Day follows."),
        recursive_scanning=True,
    )
    assert active(lore, "day", max_recursion=50) == ["day", "night"]


# --- decorators ------------------------------------------------------------------------------


def test_activate_only_after_waits_for_the_users_turn() -> None:
    lore = book(entry("late", content="@@activate_only_after 3\nLate lore."))
    assert active(lore, "late", turn=2) == []
    assert active(lore, "late", turn=3) == ["late"]
    assert active(lore, "late", turn=9) == ["late"]
    assert active(lore, "late") == ["late"]  # turns unknown: the spec says ignore it


def test_activate_only_every_fires_on_multiples_of_its_value() -> None:
    lore = book(entry("tick", keys=[], constant=True, content="@@activate_only_every 3\nTick."))
    assert [turn for turn in range(1, 10) if active(lore, "x", turn=turn)] == [3, 6, 9]


def test_dont_activate_wins_over_keys_and_constant_but_not_over_activate() -> None:
    lore = book(
        entry("quiet", content="@@dont_activate\nNever."),
        entry("quieter", constant=True, content="@@dont_activate\nNever."),
        entry("loud", keys=[], content="@@dont_activate\n@@activate\nAlways."),
    )
    assert active(lore, "quiet quieter") == ["loud"]


def test_exclude_keys_block_an_entry() -> None:
    lore = book(entry("sword", content="@@exclude_keys sheath, scabbard\nA sword."))
    assert active(lore, "a sword") == ["sword"]
    assert active(lore, "a sword in its Scabbard") == []


def test_additional_keys_must_match_as_well() -> None:
    lore = book(entry("sword", content="@@additional_keys fire,flame\nA fire sword."))
    assert active(lore, "a sword") == []
    assert active(lore, "a sword of flame") == ["sword"]
    assert active(lore, "flame") == []


def test_decorator_keys_follow_the_entry_regex_setting() -> None:
    lore = book(
        entry("sword", keys=["swords?"], use_regex=True, content="@@exclude_keys ^no\nA sword.")
    )
    assert active(lore, "two swords") == ["sword"]
    assert active(lore, "no swords") == []


def test_recursion_lets_lore_meet_a_secondary_key_for_a_key_found_in_the_chat() -> None:
    lore = book(
        entry("queen", content="She holds the sceptre."),
        entry("prince", selective=True, secondary_keys=["sceptre"]),
        recursive_scanning=True,
    )
    assert active(lore, "the prince and the queen") == ["queen", "prince"]
    assert active(lore, "the prince") == []


# --- matching details ------------------------------------------------------------------------


def test_each_message_is_scanned_on_its_own_so_anchors_hold_per_message() -> None:
    lore = book(entry("ahoy", keys=["/^ahoy\\b/i"]), scan_depth=3)
    assert active(lore, "Ahoy, captain!", "hello", "bye") == ["ahoy"]
    assert active(lore, "well, ahoy", "hello") == []


def test_case_folds_the_way_regular_expressions_do() -> None:
    # Long s and dotless i are the same letter as s and i to re.IGNORECASE; so to plain keys.
    lore = book(
        entry("istanbul", keys=["istanbul"]),
        entry("strasse", keys=["/strasse/i"]),
        entry("kiss", keys=["KISS"]),
    )
    assert active(lore, "İSTANBUL") == ["istanbul"]
    assert active(lore, "STRA\u017fSE") == ["strasse"]  # long s
    assert active(lore, "k\u0131ss") == ["kiss"]  # dotless i


def test_remembered_texts_change_no_result() -> None:
    lore = book(
        entry("dragon"),
        entry("cave", keys=["/\\bcaves?\\b/i"], selective=True, secondary_keys=["dark"]),
        scan_depth=3,
    )
    messages = ["a dragon", "the caves", "dark", "nothing", "a dragon in the dark caves"]
    first = [active(lore, *messages[i : i + 3]) for i in range(3)]
    again = [active(lore, *messages[i : i + 3]) for i in range(3)]
    lore.index.forget()
    cold = [active(lore, *messages[i : i + 3]) for i in range(3)]
    assert first == again == cold == [["dragon", "cave"], ["cave"], ["dragon", "cave"]]


def test_the_memo_is_bounded() -> None:
    from personae.core.lorebook.index import MEMO_TEXTS

    lore = book(entry("dragon"))
    for number in range(MEMO_TEXTS + 50):
        active(lore, f"message {number}")
    assert len(lore.index._memo) == MEMO_TEXTS
    assert active(lore, "message 0 dragon") == ["dragon"]
