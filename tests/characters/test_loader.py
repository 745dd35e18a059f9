from pathlib import Path

from personae.characters.loader import MAX_FILE_BYTES, load_characters_dir

REPO_CHARACTERS = Path(__file__).parents[2] / "characters"


def test_the_sample_characters_all_load() -> None:
    report = load_characters_dir(REPO_CHARACTERS)
    assert report.errors == []
    ids = {c.id for c in report.characters}
    assert {"assistant", "aria", "bram"} <= ids


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
