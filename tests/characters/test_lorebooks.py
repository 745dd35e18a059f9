"""Standalone lorebooks: read from their folder, attached to the characters that name them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from personae.characters.cards import ExportFormat, decode_character, encode_character
from personae.characters.cards.limits import MAX_JSON_BYTES
from personae.characters.loader import load_characters_dir
from personae.characters.lorebooks import (
    attach_lorebooks,
    decode_lorebook,
    load_lorebooks_dir,
)
from personae.core.prompt import PromptBudget, assemble_prompt
from personae.errors import CharacterDefinitionError
from tests.characters.card_fixtures import v2_card


def lorebook(name: str | None, *entries: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"entries": list(entries), "extensions": {}}
    if name is not None:
        data["name"] = name
    return {"spec": "lorebook_v3", "data": data}


def lore_entry(key: str, content: str, **fields: Any) -> dict[str, Any]:
    return {
        "keys": [key],
        "content": content,
        "extensions": {},
        "enabled": True,
        "insertion_order": 0,
        "use_regex": False,
        **fields,
    }


def write(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def card_naming_world(name: str, world: str) -> dict[str, Any]:
    card = v2_card()
    card["data"] = card["data"] | {"name": name, "character_book": None}
    card["data"]["extensions"] = {"world": world}
    return card


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    characters, books = tmp_path / "characters", tmp_path / "lorebooks"
    write(
        books / "tern.json",
        lorebook("Tern Almanac", lore_entry("orchard", "The orchard is glass.")),
    )
    write(books / "sea.json", lorebook(None, lore_entry("tide", "The tide is high.")))
    write(characters / "wren.json", card_naming_world("Wren", "Tern Almanac"))
    write(characters / "pike.json", card_naming_world("Pike", "tern"))
    (characters / "kit.yaml").write_text("id: kit\nname: Kit\nlorebooks: [sea, tern]\n")
    (characters / "solo.yaml").write_text("id: solo\nname: Solo\n")
    return characters, books


def test_books_attach_by_file_name_or_own_name_and_serve_several_characters(
    folders: tuple[Path, Path],
) -> None:
    characters, books = folders
    report = load_characters_dir(characters, lorebooks=books)
    assert report.errors == []
    assert report.warnings == []
    assert set(report.lorebooks) == {"tern", "Tern Almanac", "sea"}
    by_id = {c.id: c for c in report.characters}
    assert [b.name for b in by_id["wren"].books] == ["Tern Almanac"]
    assert [b.name for b in by_id["pike"].books] == ["tern"]
    assert [b.name for b in by_id["kit"].books] == ["sea", "tern"]
    assert by_id["solo"].books == ()
    # One parsed book, shared: attaching renames a copy, the entries are the same objects.
    assert by_id["wren"].books[0].entries is by_id["pike"].books[0].entries


def test_an_attached_book_reaches_the_prompt(folders: tuple[Path, Path]) -> None:
    characters, books = folders
    kit = next(
        c for c in load_characters_dir(characters, lorebooks=books).characters if c.id == "kit"
    )
    prompt = assemble_prompt(
        kit,
        history=[],
        user_text="how is the orchard at high tide?",
        user_name="Sam",
        budget=PromptBudget(context_tokens=500, reply_tokens=50),
        count_tokens=lambda text: len(text.split()),
    )
    assert "The tide is high.\nThe orchard is glass." in prompt.messages[0].content


def test_without_a_lorebooks_folder_nothing_is_attached(folders: tuple[Path, Path]) -> None:
    characters, _ = folders
    report = load_characters_dir(characters)
    assert all(c.books == () for c in report.characters)
    assert report.warnings == []


def test_a_missing_book_is_a_warning_and_the_character_still_loads(
    folders: tuple[Path, Path],
) -> None:
    characters, books = folders
    write(characters / "lost.json", card_naming_world("Lost", "Nowhere Atlas"))
    report = load_characters_dir(characters, lorebooks=books)
    assert "lost" in {c.id for c in report.characters}
    assert report.warnings == ["character 'lost': no lorebook is named 'Nowhere Atlas'"]


def test_a_broken_book_is_reported_and_skipped(folders: tuple[Path, Path]) -> None:
    characters, books = folders
    (books / "bad.json").write_text(
        '{"spec": "lorebook_v3", "data": {"entries": [{"keys": ["/(a+)+/"], "content": "x"}]}}'
    )
    (books / "truncated.json").write_text('{"spec": "lorebook_v3", "data": {')
    (books / "card.json").write_text(json.dumps(v2_card()))
    (books / ".editor.json").write_text("not even json")
    report = load_characters_dir(characters, lorebooks=books)
    problems = {Path(e.source).name: e.message for e in report.errors}
    assert set(problems) == {"bad.json", "truncated.json", "card.json"}
    assert (
        "data.entries.0.keys.0: '/(a+)+/' is refused because it could be catastrophically slow"
        in problems["bad.json"]
    )
    assert "not valid JSON (truncated?)" in problems["truncated.json"]
    assert "spec: 'chara_card_v2' is not 'lorebook_v3'" in problems["card.json"]
    assert {"tern", "sea"} <= set(report.lorebooks)
    assert len(report.characters) == 4


def test_a_book_whose_name_is_taken_answers_to_its_file_name_only(tmp_path: Path) -> None:
    write(tmp_path / "a.json", lorebook("b", lore_entry("x", "From a.")))
    write(tmp_path / "b.json", lorebook(None, lore_entry("x", "From b.")))
    report = load_lorebooks_dir(tmp_path)
    assert report.books["b"].entries[0].content == "From b."
    assert report.warnings == [
        f"{tmp_path / 'a.json'}: its name 'b' belongs to b.json; attach this book as 'a'"
    ]


def test_book_warnings_are_reported_with_their_file(tmp_path: Path) -> None:
    write(tmp_path / "w.json", lorebook(None, lore_entry("x", "@@unknown_thing\nText.")))
    assert load_lorebooks_dir(tmp_path).warnings == [
        f"{tmp_path / 'w.json'}: entries.0: @@unknown_thing is not supported (ignored)"
    ]


def test_a_cards_own_book_warnings_are_reported(tmp_path: Path) -> None:
    card = v2_card()
    card["data"]["character_book"]["entries"][0]["content"] = "@@depth deep\nThe orchard."
    write(tmp_path / "wren.json", card)
    report = load_characters_dir(tmp_path)
    assert report.warnings == [
        f"{tmp_path / 'wren.json'}: character_book.entries.0: "
        "@@depth: 'deep' is not a whole number (ignored)"
    ]


def test_a_missing_lorebooks_folder_is_no_error(tmp_path: Path) -> None:
    report = load_lorebooks_dir(tmp_path / "none")
    assert (report.books, report.errors) == ({}, [])


def test_a_sillytavern_world_file_is_read_as_sillytavern_writes_it() -> None:
    world = {
        "entries": {
            "0": {
                "uid": 0,
                "key": ["C++"],
                "keysecondary": ["code"],
                "comment": "cpp",
                "content": "C++ lore.",
                "constant": False,
                "selective": True,
                "selectiveLogic": 3,
                "order": 10,
                "position": 4,
                "depth": 1,
                "role": 2,
                "disable": False,
                "caseSensitive": None,
                "matchWholeWords": None,
            },
            "1": {"uid": 1, "key": ["x"], "content": "Off.", "disable": True, "order": None},
        }
    }
    book = decode_lorebook(json.dumps(world).encode(), source="world.json")
    cpp, off = book.entries
    assert (cpp.label, cpp.keys[0].pattern, cpp.logic.value if cpp.logic else None) == (
        "cpp",
        None,
        "and_all",
    )
    assert (cpp.placement.position.value, cpp.placement.depth, cpp.placement.role.value) == (
        "depth",
        1,
        "assistant",
    )
    assert (off.enabled, off.insertion_order) == (False, 100)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "(top): expected an object with spec 'lorebook_v3'"),
        (b'{"entries": {"0": 5}}', "entries.0: expected an object"),
        (
            b'{"spec": "lorebook_v3", "data": {"entries": "none"}}',
            "data.entries: Input should be a valid list",
        ),
        (
            b'{"spec": "lorebook_v3", "data": {"entries": [{"keys": ["/x/y"], "content": "c"}]}}',
            "flag 'y'",
        ),
        (b" " * (MAX_JSON_BYTES + 1), "the limit is"),
    ],
)
def test_bad_lorebook_files(data: bytes, message: str) -> None:
    with pytest.raises(CharacterDefinitionError) as caught:
        decode_lorebook(data, source="book.json")
    assert message in str(caught.value)
    assert str(caught.value).startswith("book.json: ")


def test_attaching_warns_once_per_missing_name() -> None:
    character = decode_character(
        json.dumps(card_naming_world("Wren", "Gone")).encode(), suffix=".json", source="w.json"
    )
    attached, warnings = attach_lorebooks(character, {})
    assert attached is character
    assert warnings == ["character 'wren': no lorebook is named 'Gone'"]


def test_native_lorebook_names_survive_a_card_round_trip() -> None:
    native = decode_character(
        b"id: kit\nname: Kit\nlorebooks: [sea, tern]\n", suffix=".yaml", source="k"
    )
    card = encode_character(native, ExportFormat.V3)
    assert json.loads(card)["data"]["extensions"]["personae"]["lorebooks"] == ["sea", "tern"]
    again = decode_character(card, suffix=".json", source="k.json")
    assert again.lorebooks == ("sea", "tern")
    assert again.lorebook_names == ("sea", "tern")
    assert encode_character(again, ExportFormat.V3) == card


def test_attached_books_are_never_written_to_a_file(folders: tuple[Path, Path]) -> None:
    characters, books = folders
    kit = next(
        c for c in load_characters_dir(characters, lorebooks=books).characters if c.id == "kit"
    )
    assert kit.attached_lorebooks
    assert b"attached" not in encode_character(kit, ExportFormat.YAML)
    with pytest.raises(CharacterDefinitionError, match="set by the reader"):
        decode_character(b"id: k\nname: K\nattached_lorebooks: []\n", suffix=".yaml", source="k")


async def test_the_server_attaches_standalone_books_and_puts_their_lore_in_prompts(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    from contextlib import aclosing

    from personae.app import open_runtime
    from personae.core.types import InboundMessage
    from personae.settings import Settings
    from personae.testing import FakeChatModel

    characters, books = folders
    model = FakeChatModel(default_reply="Noted.")
    settings = Settings(data_dir=tmp_path / "data", characters_dir=characters, lorebooks_dir=books)
    async with open_runtime(settings, backends={"fake": model}) as runtime:
        assert [b.name for b in runtime.catalog.get("kit").books] == ["sea", "tern"]
        inbound = InboundMessage(user="sam", character_id="kit", text="Is the tide in?")
        async with aclosing(runtime.service.turn(inbound)) as events:
            async for _ in events:
                pass
    system = model.requests[-1].messages[0].content
    assert "The tide is high." in system
    assert "The orchard is glass." not in system
