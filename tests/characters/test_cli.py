"""``personae characters import | list | export | check``, through typer's test runner."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personae.cli import cli
from tests.characters.card_fixtures import (
    CHARX_ASSETS,
    card_charx,
    card_png,
    chunk_card,
    png_texts,
    tiny_png,
    v1_card,
    v3_card,
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "characters"


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    path = tmp_path / "incoming"
    path.mkdir()
    (path / "Wren Card.PNG").write_bytes(card_png(v3_card()))
    (path / "tom.json").write_text(json.dumps(v1_card()))
    (path / "wren.charx").write_bytes(card_charx(v3_card(), CHARX_ASSETS))
    (path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nshort")
    return path


def run(*args: str | Path, config: Path | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    extra = ["--config-dir", str(config)] if config else []
    # Wide, so that rich does not wrap table cells.
    result = runner.invoke(cli, ["characters", *map(str, args), *extra], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_import_keeps_each_file_as_it_is_under_its_id(folder: Path, incoming: Path) -> None:
    code, out, err = run(
        "import", incoming / "Wren Card.PNG", incoming / "tom.json", "--dir", folder
    )
    assert (code, err) == (0, "")
    assert sorted(p.name for p in folder.iterdir()) == ["old-tom-pike.json", "wren-halloway.png"]
    assert (folder / "wren-halloway.png").read_bytes() == (incoming / "Wren Card.PNG").read_bytes()
    assert "imported wren-halloway" in out


def test_import_refuses_an_existing_id_unless_forced(folder: Path, incoming: Path) -> None:
    assert run("import", incoming / "Wren Card.PNG", "--dir", folder)[0] == 0
    code, _, err = run("import", incoming / "wren.charx", "--dir", folder)
    assert code == 1
    assert "id 'wren-halloway' is already used by wren-halloway.png; use --force" in err
    assert sorted(p.name for p in folder.iterdir()) == ["wren-halloway.png"]
    code, out, _ = run("import", incoming / "wren.charx", "--dir", folder, "--force")
    assert code == 0
    assert "replacing wren-halloway.png" in out
    assert sorted(p.name for p in folder.iterdir()) == ["wren-halloway.charx"]


def test_import_reports_broken_files_and_still_imports_the_rest(
    folder: Path, incoming: Path
) -> None:
    code, _, err = run("import", incoming / "broken.png", incoming / "tom.json", "--dir", folder)
    assert code == 1
    assert "broken.png: the PNG is truncated" in err
    assert [p.name for p in folder.iterdir()] == ["old-tom-pike.json"]


def test_list_shows_formats_and_broken_files(folder: Path, incoming: Path) -> None:
    run("import", incoming / "Wren Card.PNG", incoming / "tom.json", "--dir", folder)
    (folder / "zz-broken.png").write_bytes((incoming / "broken.png").read_bytes())
    code, out, _ = run("list", "--json", "--dir", folder)
    assert code == 0
    rows = {row["file"]: row for row in json.loads(out)}
    assert rows["wren-halloway.png"] == {
        "id": "wren-halloway",
        "name": "Wren Halloway",
        "version": "SENTINEL-VERSION-2.1",
        "format": "v3",
        "container": "png",
        "file": "wren-halloway.png",
        "status": "ok",
        "error": None,
    }
    assert rows["old-tom-pike.json"]["format"] == "v1"
    assert rows["zz-broken.png"]["status"] == "error"
    assert "truncated" in rows["zz-broken.png"]["error"]
    code, out, _ = run("list", "--dir", folder)
    assert code == 0
    assert "wren-halloway" in out
    assert "v3 (png)" in out
    assert "zz-broken.png: the PNG is truncated" in out


def test_list_reads_the_folder_from_settings(folder: Path, incoming: Path, tmp_path: Path) -> None:
    run("import", incoming / "tom.json", "--dir", folder)
    config = tmp_path / "config"
    config.mkdir()
    (config / "personae.yaml").write_text(f"characters_dir: {folder}\n")
    code, out, _ = run("list", "--json", config=config)
    assert code == 0
    assert [row["id"] for row in json.loads(out)] == ["old-tom-pike"]


def test_check_exits_non_zero_on_errors(folder: Path, incoming: Path) -> None:
    run("import", incoming / "tom.json", "--dir", folder)
    assert run("check", "--dir", folder)[:2] == (0, "1 valid, 0 invalid\n")
    (folder / "bad.yaml").write_text("id: bad\n")
    code, out, err = run("check", "--dir", folder)
    assert code == 1
    assert out == "1 valid, 1 invalid\n"
    assert "bad.yaml: name: Field required" in err


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("v2", "w.json"),
        ("v3", "w.json"),
        ("png", "w.png"),
        ("charx", "w.charx"),
        ("yaml", "w.yaml"),
    ],
)
def test_export_then_import_gives_the_same_character(
    folder: Path, incoming: Path, tmp_path: Path, fmt: str, name: str
) -> None:
    run("import", incoming / "wren.charx", "--dir", folder)
    target = tmp_path / "out" / name
    target.parent.mkdir()
    code, out, err = run("export", "wren-halloway", "--format", fmt, "-o", target, "--dir", folder)
    assert code == 0
    assert f"exported wren-halloway -> {target}" in out
    if fmt == "v2":
        assert "V2 cards cannot hold group_only_greetings, assets, nickname" in err
    other = tmp_path / "other"
    assert run("import", target, "--dir", other)[0] == 0
    assert run("list", "--json", "--dir", other)[1].count('"wren-halloway"') == 1
    if fmt == "charx":
        with zipfile.ZipFile(target) as archive:
            for asset, data in CHARX_ASSETS.items():
                assert archive.read(asset) == data


def test_export_png_on_a_given_image(folder: Path, incoming: Path, tmp_path: Path) -> None:
    run("import", incoming / "tom.json", "--dir", folder)
    image = tmp_path / "face.png"
    image.write_bytes(tiny_png())
    target = tmp_path / "tom.png"
    code, _, _ = run(
        "export", "old-tom-pike", "--format", "png", "-o", target, "--image", image, "--dir", folder
    )
    assert code == 0
    data = target.read_bytes()
    assert data.startswith(tiny_png()[:33])  # signature and IHDR of the given image
    assert chunk_card(png_texts(data)["ccv3"])["data"]["name"] == "Old Tom Pike"


def test_export_of_an_unknown_id_fails(folder: Path, incoming: Path, tmp_path: Path) -> None:
    run("import", incoming / "tom.json", "--dir", folder)
    code, _, err = run(
        "export", "nobody", "--format", "v3", "-o", tmp_path / "x.json", "--dir", folder
    )
    assert code == 1
    assert "unknown character 'nobody'" in err
    assert not (tmp_path / "x.json").exists()
