"""Which character answers: bindings, defaults, and mentions in group chats; commands."""

from __future__ import annotations

from personae.channels.routing import Command, Persona, choose_character, parse_command
from personae.core.channels import PlatformMessage

PERSONAS = [Persona("aria", ("Aria",)), Persona("bram", ("Bram", "Old Bram"))]


def message(text: str, *, group: bool = False, mentioned: bool = False) -> PlatformMessage:
    return PlatformMessage("tg", "u1", "c1", text, group=group, mentioned=mentioned)


def test_a_private_chat_uses_the_binding_then_the_default() -> None:
    assert choose_character(message("hi"), bound="bram", default="aria", personas=PERSONAS) == (
        "bram"
    )
    assert choose_character(message("hi"), bound=None, default="aria", personas=PERSONAS) == "aria"
    assert choose_character(message("hi"), bound=None, default=None, personas=PERSONAS) is None


def test_a_group_answers_only_when_addressed() -> None:
    quiet = message("lovely weather", group=True)
    assert choose_character(quiet, bound="aria", default="aria", personas=PERSONAS) is None
    called = message("hey @bot, thoughts?", group=True, mentioned=True)
    assert choose_character(called, bound="aria", default=None, personas=PERSONAS) == "aria"


def test_a_name_in_a_group_picks_that_character_first_by_position() -> None:
    named = message("bram, what would aria say?", group=True)
    assert choose_character(named, bound="aria", default=None, personas=PERSONAS) == "bram"
    assert (
        choose_character(
            message("Abrams tanks", group=True), bound=None, default=None, personas=PERSONAS
        )
        is None
    )  # whole words only


def test_commands_parse_with_or_without_a_bot_suffix() -> None:
    assert parse_command("/link ABCD-1234") == Command("link", "ABCD-1234")
    assert parse_command("/Character@personae_bot  bram ") == Command("character", "bram")
    assert parse_command("/new") == Command("new", "")
    assert parse_command("a /link in the middle") is None
    assert parse_command("/") is None
