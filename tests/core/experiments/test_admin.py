"""``ExperimentAdmin`` on a real SQLite store and catalog: a release pins control to the
version the new one replaced, ramps and kills keep it, a release of an unknown version or
without an older one is refused, and a refresh that raced a change made here never undoes it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from personae.core.catalog import CharacterCatalog, CharacterVersion
from personae.core.characters import Character
from personae.core.experiments.admin import ExperimentAdmin, merged
from personae.core.experiments.live import LiveExperiments
from personae.core.experiments.spec import parse_experiment
from personae.core.experiments.store import StoredExperiment
from personae.errors import InvalidInput, NotFound
from personae.storage.sqlite.experiments import SqliteExperimentStore


def version(persona: str) -> CharacterVersion:
    return CharacterVersion.of(Character(id="aria", name="Aria", persona=persona), persona.encode())


OLD, NEW = version("old"), version("new")


class SlowReads(SqliteExperimentStore):
    """Holds ``all`` after reading until the test lets it go: a refresh caught mid-read."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.hold: asyncio.Event | None = None

    async def all(self) -> list[StoredExperiment]:
        found = await super().all()
        if self.hold is not None:
            await self.hold.wait()
        return found


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[ExperimentAdmin]:
    catalog = CharacterCatalog([OLD])
    catalog.put(NEW)
    async with SlowReads(tmp_path / "db.sqlite3") as store:
        yield ExperimentAdmin(store, LiveExperiments(), catalog)


async def test_a_release_ramp_and_kill(admin: ExperimentAdmin) -> None:
    stored = await admin.release("aria", version=NEW.hash[:8], percent=10)
    experiment = stored.experiment
    assert experiment.id == "release-aria"
    assert experiment.control.character_version == OLD.hash
    assert experiment.variants[0].overrides.character_version == NEW.hash
    assert admin.live.get("release-aria") == experiment

    ramped = (await admin.release("aria", percent=60)).experiment
    assert ramped.variants[0].percent == 60
    assert ramped.control == experiment.control
    killed = (await admin.release("aria", killed=True)).experiment
    assert killed.killed
    assert admin.live.get("release-aria") == killed


async def test_releases_that_cannot_be(admin: ExperimentAdmin, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="name the --version"):
        await admin.release("aria", percent=10)
    with pytest.raises(NotFound, match="no kept version"):
        await admin.release("aria", version="ffffffff", percent=10)
    with pytest.raises(NotFound, match="unknown character"):
        await admin.release("kit", version=NEW.hash, percent=10)
    alone = ExperimentAdmin(admin.store, LiveExperiments(), CharacterCatalog([NEW]))
    with pytest.raises(InvalidInput, match="no version other than"):
        await alone.release("aria", version=NEW.hash, percent=10)
    assert await admin.store.all() == []  # nothing stored by any of them


async def test_a_refresh_that_raced_a_change_does_not_undo_it(admin: ExperimentAdmin) -> None:
    await admin.release("aria", version=NEW.hash, percent=50)
    store = admin.store
    assert isinstance(store, SlowReads)
    hold = store.hold = asyncio.Event()
    refresh = asyncio.create_task(admin.refresh())
    await asyncio.sleep(0.05)  # the refresh has read: the experiment not killed yet
    store.hold = None
    await admin.release("aria", killed=True)
    hold.set()  # the refresh goes on with what it read before the kill
    await refresh
    served = admin.live.get("release-aria")
    assert served is not None
    assert served.killed  # not the stale copy the refresh read
    await admin.refresh()  # the next refresh agrees with the store
    assert admin.live.get("release-aria") == served


def test_a_change_names_existing_variants() -> None:
    experiment = parse_experiment({"id": "e", "variants": [{"name": "a", "percent": 5}]})
    with pytest.raises(InvalidInput, match="has no variant 'b'"):
        merged(experiment, {"variants": {"b": {"percent": 1}}})
    with pytest.raises(InvalidInput, match=r"variants\.a must be a mapping"):
        merged(experiment, {"variants": {"a": 3}})
    assert merged(experiment, {"variants": {"a": {"percent": 7}}})["variants"][0]["percent"] == 7
