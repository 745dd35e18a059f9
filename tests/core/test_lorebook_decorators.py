"""V3 ``@@`` decorators: read once, taken out of the content, with the spec's fallbacks."""

from __future__ import annotations

from personae.core.lorebook.decorators import Decorators, parse_decorators
from personae.core.types import Role


def test_content_without_decorators_is_kept() -> None:
    parsed = parse_decorators("  The orchard rings at dawn.\n@@depth 2 is not at the top\n")
    assert parsed.decorators == Decorators()
    assert parsed.content == "The orchard rings at dawn.\n@@depth 2 is not at the top"
    assert parsed.warnings == ()


def test_every_supported_decorator_is_read_and_removed() -> None:
    parsed = parse_decorators(
        "\n@@depth 3\n@@role User\n@@position after_desc\n@@activate_only_after 2\n"
        "@@activate_only_every 4\n@@dont_activate\n@@activate\n"
        "@@additional_keys fire, flame ,\n@@exclude_keys ice\n\n\nThe lore.\n\nMore lore.\n"
    )
    assert parsed.decorators == Decorators(
        depth=3,
        role=Role.USER,
        position="after_desc",
        activate_only_after=2,
        activate_only_every=4,
        dont_activate=True,
        activate=True,
        additional_keys=("fire", "flame"),
        exclude_keys=("ice",),
    )
    assert parsed.content == "The lore.\n\nMore lore."
    assert parsed.warnings == ()


def test_a_depth_below_one_means_after_the_newest_message() -> None:
    assert parse_decorators("@@depth -2\nx").decorators.depth == 0


def test_the_first_decorator_of_a_name_counts() -> None:
    assert parse_decorators("@@depth 1\n@@depth 7\nx").decorators.depth == 1


def test_an_unknown_decorator_falls_back_to_its_first_known_fallback() -> None:
    parsed = parse_decorators(
        "@@risu_only 4\n@@@agn_only 4\n@@@depth 5\n@@@depth 9\n@@instruct_depth 2\n@@@role user\nx"
    )
    assert parsed.decorators.depth == 5
    assert parsed.decorators.role is Role.USER
    assert parsed.content == "x"
    assert parsed.warnings == ()  # every group found something it understood


def test_an_invalid_value_is_ignored_with_a_warning_unless_a_fallback_works() -> None:
    parsed = parse_decorators(
        "@@depth deep\n@@role narrator\n@@@role assistant\n@@scan_depth 4\n"
        "@@activate_only_every 0\n@@position sidebar\n@@exclude_keys ,\nx"
    )
    d = parsed.decorators
    assert (d.depth, d.role, d.activate_only_every, d.position, d.exclude_keys) == (
        None,
        Role.ASSISTANT,
        None,
        None,
        (),
    )
    assert parsed.warnings == (
        "@@depth: 'deep' is not a whole number (ignored)",
        "@@scan_depth is not supported (ignored)",
        "@@activate_only_every: 0 is below 1 (ignored)",
        "@@position: 'sidebar' is not one of before_desc, after_desc, personality, scenario, "
        "before_char, after_char (ignored)",
        "@@exclude_keys: no keys given (ignored)",
    )


def test_a_fallback_without_a_decorator_before_it_is_ignored() -> None:
    parsed = parse_decorators("@@@depth 3\r\nx")
    assert parsed.decorators.depth is None
    assert parsed.content == "x"
