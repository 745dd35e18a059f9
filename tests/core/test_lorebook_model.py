"""Reading a lorebook: shapes, placement precedence, warnings, and bad input refused at load."""

from __future__ import annotations

from typing import Any

import pytest

from personae.core.lorebook import (
    DEFAULT_SCAN_DEPTH,
    Logic,
    LorebookError,
    Placement,
    Position,
    parse_book,
    parse_lorebook_v3,
)
from personae.core.types import Role
from tests.core.lorebook_helpers import book, entry


def test_book_settings_and_defaults() -> None:
    lore = book(
        entry("a"), name="Tern Almanac", scan_depth=6, token_budget=300, recursive_scanning=True
    )
    assert (lore.name, lore.scan_depth, lore.token_budget, lore.recursive) == (
        "Tern Almanac",
        6,
        300,
        True,
    )
    plain = book(entry("a"))
    assert (plain.name, plain.scan_depth, plain.token_budget, plain.recursive) == (
        None,
        DEFAULT_SCAN_DEPTH,
        None,
        False,
    )


def test_entry_fields() -> None:
    lore = book(
        entry("a", insertion_order=7, priority=3, comment="ignored: the name wins"),
        {"keys": ["b"], "content": "b", "extensions": {}, "enabled": True, "insertion_order": 0}
        | {"constant": True, "comment": "Bee"},
        {"keys": ["c"], "content": "c", "extensions": {}, "enabled": True, "insertion_order": 2},
    )
    a, b, c = lore.entries
    assert (a.label, a.insertion_order, a.priority, a.always) == ("a", 7, 3, False)
    assert (b.label, b.always) == ("Bee", True)
    assert (c.label, c.priority) == ("entries.2", 2)  # no priority: the insertion order


@pytest.mark.parametrize(
    ("fields", "placement"),
    [
        ({}, Placement(Position.BEFORE_CHAR)),
        ({"position": "after_char"}, Placement(Position.AFTER_CHAR)),
        ({"content": "@@depth 0\nx"}, Placement(Position.DEPTH, 0, Role.SYSTEM)),
        (
            {"content": "@@depth 2\n@@role assistant\nx"},
            Placement(Position.DEPTH, 2, Role.ASSISTANT),
        ),
        ({"content": "@@position after_desc\nx"}, Placement(Position.AFTER_DESC)),
        ({"content": "@@position before_desc\nx"}, Placement(Position.BEFORE_CHAR)),
        ({"content": "@@position scenario\n@@depth 1\nx"}, Placement(Position.SCENARIO)),
        # SillyTavern's own settings, as its exports carry them
        ({"extensions": {"position": 1}}, Placement(Position.AFTER_CHAR)),
        (
            {"extensions": {"position": 4, "depth": 3, "role": 1}},
            Placement(Position.DEPTH, 3, Role.USER),
        ),
        (
            {"position": "before_char", "extensions": {"position": 4, "depth": 0, "role": None}},
            Placement(Position.DEPTH, 0, Role.SYSTEM),
        ),
        (
            {"extensions": {"position": 4, "depth": 2}, "content": "@@role user\nx"},
            Placement(Position.DEPTH, 2, Role.USER),
        ),
        (
            {"extensions": {"position": 4, "depth": 2}, "content": "@@depth 5\nx"},
            Placement(Position.DEPTH, 5, Role.SYSTEM),
        ),
    ],
)
def test_placement_precedence(fields: dict[str, Any], placement: Placement) -> None:
    assert book(entry("x", **fields)).entries[0].placement == placement


def test_a_position_on_a_section_keeps_where_it_would_go_otherwise() -> None:
    lore = book(entry("x", content="@@position personality\n@@depth 1\nx"), entry("y"))
    assert lore.entries[0].fallback == Placement(Position.DEPTH, 1)
    assert lore.entries[1].fallback is None


def test_positions_with_no_equivalent_warn_and_go_after_the_character() -> None:
    lore = book(entry("an", extensions={"position": 2}), entry("odd", position="top"))
    assert [e.placement for e in lore.entries] == [Placement(Position.AFTER_CHAR)] * 2
    assert lore.warnings == (
        "entries.0: SillyTavern position 2 (author's note) has no equivalent; placed after_char",
        "entries.1: position 'top' is not before_char or after_char; placed after_char",
    )


def test_selective_logic_from_sillytavern_and_warnings_for_bad_values() -> None:
    lore = book(
        entry("a", selective=True, secondary_keys=["s"], extensions={"selectiveLogic": 3}),
        entry("b", selective=True, secondary_keys=["s"], extensions={"selectiveLogic": 9}),
    )
    assert [e.logic for e in lore.entries] == [Logic.AND_ALL, Logic.AND_ANY]
    assert "selectiveLogic 9" in lore.warnings[0]


def test_decorator_warnings_name_the_entry() -> None:
    lore = book(entry("a"), entry("b", content="@@scan_depth 3\nx"))
    assert lore.warnings == ("entries.1: @@scan_depth is not supported (ignored)",)


def test_empty_keys_are_skipped() -> None:
    assert [k.source for k in book(entry("a", keys=["", "  ", "a"])).entries[0].keys] == ["a"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "(top): expected an object holding 'entries'"),
        ({"name": "x"}, "entries: Field required"),
        ({"entries": [{"content": "x"}]}, "entries.0.keys: Field required"),
        (
            {"entries": [{"keys": "dragon", "content": "x"}]},
            "entries.0.keys: Input should be a valid list",
        ),
        (
            {"entries": [{"keys": ["a"], "content": 3}]},
            "entries.0.content: Input should be a valid string",
        ),
        (
            {"entries": [], "scan_depth": -1},
            "scan_depth: Input should be greater than or equal to 0",
        ),
        ({"entries": [], "token_budget": "9"}, "token_budget: Input should be a valid integer"),
        ({"entries": [{"keys": ["a"], "content": "x", "enabled": "yes"}]}, "entries.0.enabled"),
    ],
)
def test_wrong_shapes_are_errors_with_their_path(data: object, message: str) -> None:
    with pytest.raises(LorebookError) as caught:
        parse_book(data)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "fields", "message"),
    [
        (["/(unclosed/"], {}, "entries.0.keys.0: '/(unclosed/' is not a valid regular expression"),
        (["fine", "(oops"], {"use_regex": True}, "entries.0.keys.1: '(oops' is not a valid"),
        (["/\\p{L}+/u"], {}, "is not a valid regular expression: bad escape \\p"),
        (
            ["/(a+)+$/"],
            {},
            "entries.0.keys.0: '/(a+)+$/' is refused because it could be catastrophically "
            "slow: a repeated group holds a repeat",
        ),
        (["/.*a.*b/i"], {}, "more than one unbounded repeat"),
        (["/x/y"], {}, "the regex flag 'y' is not supported"),
        (["a"], {"selective": True, "secondary_keys": ["/[z/"]}, "entries.0.secondary_keys.0"),
        (["a"], {"content": "@@exclude_keys /(b+)+/\nx"}, "entries.0.@@exclude_keys.0"),
    ],
)
def test_bad_regexes_are_refused_at_load(
    keys: list[str], fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(LorebookError) as caught:
        book(entry("x", keys=keys, **fields))
    assert message in str(caught.value)


def test_javascript_named_groups_and_plain_slashes() -> None:
    lore = book(entry("g", keys=["/(?<beast>wolf|bear)/i"]), entry("path", keys=["/dev/null"]))
    named, path = lore.entries
    assert named.keys[0].pattern is not None
    assert path.keys[0].pattern is None
    assert path.keys[0].literal == "/dev/null"


def test_a_standalone_lorebook_v3() -> None:
    lore = parse_lorebook_v3(
        {"spec": "lorebook_v3", "data": {"name": "Atlas", "entries": [entry("a")]}}
    )
    assert (lore.name, [e.label for e in lore.entries]) == ("Atlas", ["a"])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "(top): expected an object with spec 'lorebook_v3'"),
        ({"spec": "chara_card_v3", "data": {}}, "spec: 'chara_card_v3' is not 'lorebook_v3'"),
        ({"spec": "lorebook_v3", "data": []}, "data: expected an object"),
        ({"spec": "lorebook_v3", "data": {"entries": [{}]}}, "data.entries.0.keys: Field required"),
    ],
)
def test_standalone_lorebooks_of_the_wrong_shape(document: object, message: str) -> None:
    with pytest.raises(LorebookError) as caught:
        parse_lorebook_v3(document)
    assert message in str(caught.value)
