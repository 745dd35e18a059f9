"""Experiments wired into a runtime: the SQLite store, the YAML folder, the live set the
service assigns from, the turn recorder, and the refresh that brings in other processes'
changes (docs/experiments.md)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
import yaml

from personae.core.catalog import CharacterCatalog
from personae.core.experiments.admin import ExperimentAdmin
from personae.core.experiments.live import LiveExperiments
from personae.core.experiments.recorder import VariantRecorder
from personae.core.experiments.spec import experiment_data, parse_experiment
from personae.core.experiments.store import ExperimentStore
from personae.core.observe import TurnObserver
from personae.core.supervisor import Supervisor
from personae.errors import InvalidInput
from personae.settings import Settings
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.experiments import SqliteExperimentStore

log = structlog.get_logger(__name__)

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Experiments:
    live: LiveExperiments  # what ChatService assigns from
    recorder: VariantRecorder  # an observer of the service: records variants' turns
    admin: ExperimentAdmin  # the admin API's, the WebSocket's and the CLI's


async def open_experiments(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    database: SqliteDatabase,
    catalog: CharacterCatalog,
    observer: TurnObserver,
    supervisor: Supervisor | None = None,
) -> Experiments:
    """Open the store, read the YAML folder into it, serve what it holds; with a
    ``supervisor``, re-read the store every ``experiments.refresh_s``."""
    store = await stack.enter_async_context(SqliteExperimentStore(database))
    recorder = VariantRecorder(store)
    stack.push_async_callback(recorder.close)  # before the store closes: last turns land
    live = LiveExperiments()
    admin = ExperimentAdmin(store, live, catalog, observer=observer, recorder=recorder)
    await read_folder(settings.experiments.dir, store)
    await admin.refresh()
    if live.all():
        log.info("experiments loaded", ids=[e.id for e in live.all()])
    if supervisor is not None:
        every = settings.experiments.refresh_s
        supervisor.start("experiments-refresh", lambda: refresh_forever(admin, every))
    return Experiments(live, recorder, admin)


@asynccontextmanager
async def open_experiment_admin(
    settings: Settings, catalog: CharacterCatalog
) -> AsyncIterator[ExperimentAdmin]:
    """The store and the admin, for ``personae release`` (no server needed: a running one
    picks the change up within ``experiments.refresh_s``)."""
    async with (
        SqliteDatabase(settings.database_path) as database,
        SqliteExperimentStore(database) as store,
    ):
        admin = ExperimentAdmin(store, LiveExperiments(), catalog)
        await admin.refresh()
        yield admin


async def read_folder(folder: Path, store: ExperimentStore) -> int:
    """Store each experiment file of ``folder`` whose content is new; a broken file is
    logged and skipped, never fatal. Returns how many files were read."""
    read = 0
    for path in await asyncio.to_thread(_experiment_files, folder):
        data = await asyncio.to_thread(path.read_bytes)
        try:
            loaded = yaml.safe_load(data)
            if not isinstance(loaded, dict):
                raise InvalidInput("an experiment file holds one mapping")
            experiment = parse_experiment(loaded)
        except (yaml.YAMLError, InvalidInput) as exc:
            log.error("experiment file skipped", file=str(path), error=str(exc))
            continue
        await store.sync_file(experiment, str(path), hashlib.sha256(data).hexdigest())
        read += 1
    return read


def _experiment_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES)


async def refresh_forever(admin: ExperimentAdmin, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        await admin.refresh()


async def release(
    settings: Settings,
    character: str,
    *,
    url: str | None = None,
    api_key: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """``personae release``: through a running server's admin API (``url``), whose catalog
    knows the versions it replaced since it started; else straight into the store, with the
    versions the characters folder has now (a running server picks it up within
    ``experiments.refresh_s``). Returns the experiment's YAML shape."""
    given = {k: v for k, v in changes.items() if v is not None}
    if url:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            answer = await client.post(
                "/api/admin/experiments/release", json={"character": character, **given}
            )
        if answer.status_code >= 400:
            error = answer.json().get("error", {}) if answer.content else {}
            raise InvalidInput(f"{answer.status_code}: {error.get('message', answer.text)}")
        spec: dict[str, Any] = answer.json()["spec"]
        return spec
    from personae.app.runtime import load_catalog  # here: runtime imports this module

    catalog = load_catalog(settings)
    async with open_experiment_admin(settings, catalog) as admin:
        stored = await admin.release(character, **given)
    return experiment_data(stored.experiment)
