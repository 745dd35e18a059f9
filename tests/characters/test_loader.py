import json
from pathlib import Path

from personae.characters.loader import MAX_FILE_BYTES, load_characters_dir
from tests.characters.card_fixtures import card_charx, card_png, v1_card, v2_card, v3_card

REPO_CHARACTERS = Path(__file__).parents[2] / "characters"


def test_the_sample_characters_all_load() -> None:
    report = load_characters_dir(REPO_CHARACTERS)
    assert report.errors == []
    ids = {c.id for c in report.characters}
    assert {"assistant", "aria", "bram", "juniper-quill"} <= ids


def test_the_sample_card_is_a_v3_png_with_card_features() -> None:
    report = load_characters_dir(REPO_CHARACTERS)
    juniper = next(c for c in report.characters if c.id == "juniper-quill")
    assert (juniper.source_format, juniper.source_container) == ("v3", "png")
    assert juniper.char_name == "Juniper"
    assert len(juniper.greetings) == 3
    assert juniper.group_only_greetings
    assert len(juniper.example_dialogues) == 2
    assert juniper.depth_prompt is not None
    assert report.files["juniper-quill"].name == "juniper-quill.png"


def test_every_format_loads_from_one_folder(tmp_path: Path) -> None:
    (tmp_path / "kit.yaml").write_text("id: kit\nname: Kit\n")
    (tmp_path / "tom.JSON").write_text(json.dumps(v1_card()))
    (tmp_path / "wren.png").write_bytes(card_png(v3_card()))
    (tmp_path / "wren2.charx").write_bytes(
        card_charx(v2_card() | {"data": v2_card()["data"] | {"name": "Wren Two"}})
    )
    (tmp_path / ".wren.png.tmp").write_bytes(b"half a file")
    (tmp_path / ".hidden.yaml").write_text("id: ghost\nname: Ghost\n")
    report = load_characters_dir(tmp_path)
    assert report.errors == []
    found = {c.id: (c.source_format, c.source_container) for c in report.characters}
    assert found == {
        "kit": ("yaml", "yaml"),
        "old-tom-pike": ("v1", "json"),
        "wren-halloway": ("v3", "png"),
        "wren-two": ("v2", "charx"),
    }
    assert report.files["old-tom-pike"].name == "tom.JSON"


def test_broken_files_are_reported_and_the_rest_still_load(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("id: good\nname: Good\n")
    (tmp_path / "bad.yaml").write_text("id: bad\n")  # no name
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "huge.yaml").write_text("id: huge\nname: H\ndescription: " + "x" * MAX_FILE_BYTES)
    (tmp_path / "twin.yml").write_text("id: good\nname: Twin\n")
    (tmp_path / "notes.txt").write_text("not a character")
    report = load_characters_dir(tmp_path)
    assert [c.id for c in report.characters] == ["good"]
    problems = {Path(e.source).name: e.message for e in report.errors}
    assert set(problems) == {"bad.yaml", "binary.yaml", "huge.yaml", "twin.yml"}
    assert "name: Field required" in problems["bad.yaml"]
    assert "not UTF-8" in problems["binary.yaml"]
    assert "limit" in problems["huge.yaml"]
    assert "already used by good.yaml" in problems["twin.yml"]


def test_a_missing_folder_is_an_error_not_a_crash(tmp_path: Path) -> None:
    report = load_characters_dir(tmp_path / "nope")
    assert report.characters == []
    assert "does not exist" in report.errors[0].message
