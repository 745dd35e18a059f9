"""The hot reload watcher on a real folder, with real file system events.

Every wait is a polling deadline (``eventually``), never a measured time: a slow machine
takes longer to pass, not a different path.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from personae.characters.library import write_atomically
from personae.characters.lorebooks import LorebookShelf
from personae.characters.reload import CharacterFolder, FileRead
from personae.characters.watcher import CharacterWatcher
from personae.core.catalog import CharacterCatalog

DEADLINE_S = 10.0


async def eventually(check: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the change was not applied in time")
        await asyncio.sleep(0.02)


def yaml(character_id: str, persona: str) -> str:
    return f"id: {character_id}\nname: {character_id.title()}\npersona: {persona}\n"


def persona(catalog: CharacterCatalog, character_id: str) -> str | None:
    return catalog.get(character_id).persona if character_id in catalog else None


@pytest.fixture
def loaded(tmp_path: Path) -> CharacterFolder:
    (tmp_path / "a.yaml").write_text(yaml("a", "one"))
    folder = CharacterFolder(tmp_path, CharacterCatalog())
    folder.apply(folder.rescan(), announce=False)
    return folder


@pytest.fixture
async def watching(loaded: CharacterFolder) -> AsyncIterator[CharacterWatcher]:
    async with CharacterWatcher(loaded, retry_s=0.05, idle_ms=100) as watcher:
        await eventually(lambda: watcher.batches >= 1)  # watching, and caught up
        yield watcher


async def test_edits_additions_breakage_and_deletion_are_applied(
    watching: CharacterWatcher, tmp_path: Path
) -> None:
    catalog = watching.folder.catalog

    (tmp_path / "a.yaml").write_text(yaml("a", "two"))
    await eventually(lambda: persona(catalog, "a") == "two")

    write_atomically(tmp_path / "b.yaml", yaml("b", "bee").encode())
    await eventually(lambda: persona(catalog, "b") == "bee")

    (tmp_path / "a.yaml").write_text("id: a\nname: [\n")
    await eventually(lambda: bool(catalog.errors("a")))
    assert persona(catalog, "a") == "two"  # the old version keeps serving

    (tmp_path / "a.yaml").unlink()
    await eventually(lambda: "a" not in catalog)
    assert persona(catalog, "b") == "bee"
    assert watching.failures == 0


async def test_a_burst_of_writes_ends_at_the_last_content(
    watching: CharacterWatcher, tmp_path: Path
) -> None:
    for i in range(20):
        (tmp_path / "a.yaml").write_text(yaml("a", f"draft {i}"))
    await eventually(lambda: persona(watching.folder.catalog, "a") == "draft 19")


async def test_a_change_made_before_the_watch_started_is_caught_up(loaded: CharacterFolder) -> None:
    async with CharacterWatcher(loaded, idle_ms=100) as watcher:
        (loaded.path / "a.yaml").write_text(yaml("a", "early"))  # the task has not run yet
        await eventually(lambda: persona(loaded.catalog, "a") == "early")
        assert watcher.failures == 0


async def test_a_missing_folder_is_retried_until_it_exists(tmp_path: Path) -> None:
    folder = CharacterFolder(tmp_path / "later", CharacterCatalog())
    async with CharacterWatcher(folder, retry_s=0.05, idle_ms=100) as watcher:
        await eventually(lambda: watcher.failures >= 2)
        (tmp_path / "later").mkdir()
        (tmp_path / "later" / "a.yaml").write_text(yaml("a", "found"))
        await eventually(lambda: persona(folder.catalog, "a") == "found")


async def test_a_failure_while_applying_is_logged_and_the_watcher_goes_on(
    watching: CharacterWatcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = watching.folder
    real_apply = folder.apply
    calls: list[int] = []

    def flaky(reads: Sequence[FileRead], *, announce: bool = True) -> None:
        calls.append(len(reads))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        real_apply(reads, announce=announce)

    monkeypatch.setattr(folder, "apply", flaky)
    (tmp_path / "a.yaml").write_text(yaml("a", "after the bug"))

    # The failed batch is not lost: the restart rescans the folder.
    await eventually(lambda: persona(folder.catalog, "a") == "after the bug")
    assert watching.failures == 1
    assert len(calls) >= 2


async def test_closing_stops_the_task_and_is_idempotent(loaded: CharacterFolder) -> None:
    watcher = CharacterWatcher(loaded, idle_ms=100)
    await watcher.close()  # never started: nothing to do
    async with watcher:
        await eventually(lambda: watcher.batches >= 1)
    await watcher.close()
    (loaded.path / "a.yaml").write_text(yaml("a", "unwatched"))
    await asyncio.sleep(0.2)
    assert persona(loaded.catalog, "a") == "one"
    with pytest.raises(RuntimeError, match="runs once"):
        await watcher.__aenter__()


async def test_a_running_watcher_cannot_be_entered_again(loaded: CharacterFolder) -> None:
    async with CharacterWatcher(loaded, idle_ms=100) as watcher:
        with pytest.raises(RuntimeError, match="runs once"):
            await watcher.__aenter__()


async def test_a_folder_removed_and_made_again_is_watched_again(
    watching: CharacterWatcher, tmp_path: Path
) -> None:
    folder = watching.folder
    shutil.rmtree(tmp_path)
    await eventually(lambda: watching.failures >= 1)

    await asyncio.to_thread(tmp_path.mkdir)
    (tmp_path / "a.yaml").write_text(yaml("a", "restored"))
    await eventually(lambda: persona(folder.catalog, "a") == "restored")


def book_json(content: str) -> str:
    entry = {"keys": ["tide"], "content": content, "extensions": {}, "enabled": True}
    entry |= {"insertion_order": 0, "use_regex": False}
    return json.dumps({"spec": "lorebook_v3", "data": {"entries": [entry], "extensions": {}}})


def book_contents(catalog: CharacterCatalog, character_id: str) -> list[str]:
    return [e.content for book in catalog.get(character_id).books for e in book.entries]


async def test_a_changed_lorebook_makes_a_new_version_of_its_characters(tmp_path: Path) -> None:
    characters, books = tmp_path / "characters", tmp_path / "lorebooks"
    characters.mkdir()
    books.mkdir()
    (characters / "a.yaml").write_text(yaml("a", "one") + "lorebooks: [tides]\n")
    (characters / "b.yaml").write_text(yaml("b", "two"))  # attaches no book: never changes
    (books / "tides.json").write_text(book_json("The tide is high."))
    folder = CharacterFolder(characters, CharacterCatalog(), lorebooks=LorebookShelf(books))
    folder.apply(folder.rescan(with_lorebooks=True), announce=False)
    catalog = folder.catalog
    first, other = catalog.get_version("a").hash, catalog.get_version("b").hash
    assert book_contents(catalog, "a") == ["The tide is high."]

    async with CharacterWatcher(folder, retry_s=0.05, idle_ms=100) as watcher:
        await eventually(lambda: watcher.batches >= 1)
        write_atomically(books / "tides.json", book_json("The tide is low.").encode())
        await eventually(lambda: book_contents(catalog, "a") == ["The tide is low."])
        edited = catalog.get_version("a").hash
        assert edited != first
        assert catalog.get_version("b").hash == other

        # A broken book: the version loaded before keeps serving, unchanged.
        applied = watcher.batches
        write_atomically(books / "tides.json", b'{"spec": "lorebook_v3", "data": {')
        await eventually(lambda: watcher.batches > applied)
        assert book_contents(catalog, "a") == ["The tide is low."]
        assert catalog.get_version("a").hash == edited

        # The book removed: its characters go on without it.
        (books / "tides.json").unlink()
        await eventually(lambda: book_contents(catalog, "a") == [])
        assert catalog.get_version("a").hash not in {first, edited}  # the file alone now
