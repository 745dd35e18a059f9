"""What a changed file does to the catalog (``CharacterFolder``), on real files, one batch at
a time (the watcher that makes the batches is tested in test_watcher.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from personae.characters.library import write_atomically
from personae.characters.reload import CharacterFolder, list_folder, read_files
from personae.core.catalog import CharacterCatalog
from tests.characters.card_fixtures import card_png, v3_card


def yaml(character_id: str, persona: str, name: str | None = None) -> str:
    return f"id: {character_id}\nname: {name or character_id.title()}\npersona: {persona}\n"


class Folder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.catalog = CharacterCatalog()
        self.sync = CharacterFolder(path, self.catalog)

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.write_text(text)
        return target

    def load(self) -> None:
        self.sync.apply(self.sync.rescan(), announce=False)

    def changed(self, *names: str) -> None:
        self.sync.apply(read_files(self.path / n for n in names))

    def personas(self) -> dict[str, str]:
        return {c.id: c.persona for c in self.catalog.all()}


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


def test_the_first_load_serves_every_valid_file_with_its_hash(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "one"))
    (folder.path / "w.png").write_bytes(png := card_png(v3_card()))
    folder.write("broken.yaml", "id: [")
    folder.write(".a.yaml.tmp", yaml("a", "half"))  # an importer's temporary file

    folder.load()

    assert folder.personas().keys() == {"a", "wren-halloway"}
    assert (
        folder.catalog.get_version("a").hash
        == hashlib.sha256(b"id: a\nname: A\npersona: one\n").hexdigest()
    )
    assert folder.catalog.get_version("wren-halloway").hash == hashlib.sha256(png).hexdigest()
    assert folder.catalog.get_version("a").source == "a.yaml"
    assert list(folder.sync.broken) == [folder.path / "broken.yaml"]


def test_an_edit_becomes_the_current_version_and_the_old_one_is_kept(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "one"))
    folder.load()
    first = folder.catalog.get_version("a")

    folder.write("a.yaml", yaml("a", "two"))
    folder.changed("a.yaml")

    assert folder.personas() == {"a": "two"}
    assert [v.hash for v in folder.catalog.versions("a")][1] == first.hash
    assert folder.catalog.errors("a") == ()


def test_a_broken_edit_keeps_the_old_version_serving_with_the_error(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "one"))
    folder.load()

    folder.write("a.yaml", "id: a\nname: [\n")
    folder.changed("a.yaml")

    assert folder.personas() == {"a": "one"}
    (error,) = folder.catalog.errors("a")
    assert error.startswith("a.yaml: not valid YAML")
    assert str(folder.path) not in error  # API callers see the file's name, not our paths

    folder.write("a.yaml", yaml("a", "fixed"))
    folder.changed("a.yaml")
    assert folder.personas() == {"a": "fixed"}
    assert folder.catalog.errors("a") == ()
    assert folder.sync.broken == {}


def test_a_deleted_file_removes_its_character(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "one"))
    folder.write("b.yaml", yaml("b", "bee"))
    folder.load()

    (folder.path / "a.yaml").unlink()
    folder.changed("a.yaml")

    assert folder.personas() == {"b": "bee"}
    folder.write("a.yaml", yaml("a", "one"))  # and it comes back
    folder.changed("a.yaml")
    assert folder.personas() == {"a": "one", "b": "bee"}


def test_a_deleted_broken_file_is_forgotten(folder: Folder) -> None:
    folder.write("broken.yaml", "id: [")
    folder.load()
    (folder.path / "broken.yaml").unlink()
    folder.changed("broken.yaml")
    assert folder.sync.broken == {}


def test_a_rename_in_one_batch_never_leaves_the_character_missing(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "one"))
    folder.load()
    before = folder.catalog.get_version("a")

    (folder.path / "a.yaml").rename(folder.path / "renamed.yaml")
    folder.changed("renamed.yaml", "a.yaml")

    assert folder.catalog.get_version("a") is before  # same content: the same version
    assert folder.sync.broken == {}
    (folder.path / "renamed.yaml").unlink()
    folder.changed("renamed.yaml")
    assert "a" not in folder.catalog


def test_an_atomic_replace_through_a_dot_file_is_one_change(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "one"))
    folder.load()
    write_atomically(folder.path / "a.yaml", yaml("a", "two").encode())
    folder.changed(".a.yaml.tmp", "a.yaml")  # the temporary file is not a character file
    assert folder.personas() == {"a": "two"}
    assert folder.sync.broken == {}


def test_a_file_that_now_names_another_id_moves_the_character(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "one"))
    folder.load()

    folder.write("a.yaml", yaml("z", "zed"))
    folder.changed("a.yaml")

    assert folder.personas() == {"z": "zed"}


def test_an_id_taken_by_another_file_is_refused_and_waits_for_it(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "first"))
    folder.write("b.yaml", yaml("a", "second"))  # the same id: name order decides at start
    folder.load()
    assert folder.personas() == {"a": "first"}
    assert "already used by a.yaml" in str(folder.sync.broken[folder.path / "b.yaml"])

    folder.write("c.yaml", yaml("a", "third"))  # later, the file already serving keeps it
    folder.changed("c.yaml")
    assert folder.personas() == {"a": "first"}

    (folder.path / "a.yaml").unlink()  # the owner goes: the first waiting file takes over
    folder.changed("a.yaml")
    assert folder.personas() == {"a": "second"}
    assert set(folder.sync.broken) == {folder.path / "c.yaml"}


def test_an_edit_to_an_id_taken_elsewhere_keeps_the_old_character(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "one"))
    folder.write("b.yaml", yaml("b", "bee"))
    folder.load()

    folder.write("b.yaml", yaml("a", "impostor"))
    folder.changed("b.yaml")

    assert folder.personas() == {"a": "one", "b": "bee"}
    assert folder.catalog.errors("b") == ("b.yaml: id 'a' is already used by a.yaml",)


def test_a_rescan_catches_up_with_everything(folder: Folder) -> None:
    folder.write("a.yaml", yaml("a", "one"))
    folder.write("b.yaml", yaml("b", "bee"))
    folder.load()
    (folder.path / "a.yaml").unlink()
    folder.write("b.yaml", yaml("b", "bee2"))
    folder.write("c.json", json.dumps(v3_card()))

    folder.load()

    assert folder.personas().keys() == {"b", "wren-halloway"}
    assert folder.personas()["b"] == "bee2"


def test_a_missing_folder_lists_nothing(tmp_path: Path) -> None:
    assert list_folder(tmp_path / "nowhere") == []
    sync = CharacterFolder(tmp_path / "nowhere", CharacterCatalog())
    sync.apply(sync.rescan())
    assert len(sync.catalog) == 0


def test_prepare_finishes_each_character_before_it_is_served(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml("a", "one"))
    sync = CharacterFolder(
        tmp_path, CharacterCatalog(), prepare=lambda c: c.model_copy(update={"scenario": "set"})
    )
    sync.apply(sync.rescan())
    served = sync.catalog.get_version("a")
    assert served.character.scenario == "set"
    assert served.hash == hashlib.sha256((tmp_path / "a.yaml").read_bytes()).hexdigest()
