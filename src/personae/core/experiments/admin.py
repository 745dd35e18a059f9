"""Managing experiments: create, change, ramp, kill, delete, release, report, feedback.

One object for the admin API, the WebSocket and ``personae release``, so every path writes
through the same store and the same ``LiveExperiments``: a change made here holds from the
next turn of this process; other processes see it at their next ``refresh`` (at once when
the nodes share a bus: ``on_change`` tells them, see app/node_sync.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from personae.core.catalog import CharacterCatalog
from personae.core.experiments.live import LiveExperiments
from personae.core.experiments.recorder import VariantRecorder
from personae.core.experiments.report import VariantReport, report
from personae.core.experiments.spec import Experiment, experiment_data, parse_experiment
from personae.core.experiments.store import ExperimentStore, StoredExperiment
from personae.core.observe import TurnObserver
from personae.errors import InvalidInput, NotFound

RELEASE_VARIANT = "new"  # the variant a release names; control keeps the old version


def release_id(character_id: str) -> str:
    return f"release-{character_id}"


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    experiment: Experiment
    variants: list[VariantReport]


class ExperimentAdmin:
    def __init__(
        self,
        store: ExperimentStore,
        live: LiveExperiments,
        catalog: CharacterCatalog,
        observer: TurnObserver | None = None,
        recorder: VariantRecorder | None = None,
    ) -> None:
        self.store = store
        self._recorder = recorder  # flushed before a report, which then sees every turn
        self._changes = 0  # changes made here; a refresh that raced one is dropped
        self.live = live
        self._catalog = catalog
        self._observer = observer or TurnObserver()
        self.on_change: Callable[[], None] | None = None  # other nodes refresh at once

    async def refresh(self) -> None:
        """Serve what the store holds (changes made by another process, or the CLI)."""
        before = self._changes
        stored = await self.store.all()
        # A change made here while the store was read may be missing from what was read:
        # serving that would undo a kill switch until the next refresh.
        if self._changes == before:
            self.live.replace(s.experiment for s in stored)

    async def all(self) -> list[StoredExperiment]:
        return await self.store.all()

    async def get(self, experiment_id: str) -> StoredExperiment:
        stored = await self.store.get(experiment_id)
        if stored is None:
            raise NotFound(f"no experiment {experiment_id!r}", experiment=experiment_id)
        return stored

    async def create(self, data: Mapping[str, Any]) -> StoredExperiment:
        stored = await self.store.create(parse_experiment(data))
        self._serve(stored.experiment)
        return stored

    async def change(self, experiment_id: str, changes: Mapping[str, Any]) -> StoredExperiment:
        """Merge ``changes`` into the experiment's YAML shape and check the result whole.
        ``variants`` may be a mapping of variant name to the fields that change (a ramp:
        ``{"variants": {"v2": {"percent": 20}}}``), or a list that replaces them all."""
        current = (await self.get(experiment_id)).experiment
        if "id" in changes and changes["id"] != experiment_id:
            raise InvalidInput("an experiment's id cannot change")
        stored = await self.store.save(parse_experiment(merged(current, changes)))
        self._serve(stored.experiment)
        return stored

    async def delete(self, experiment_id: str) -> None:
        if not await self.store.delete(experiment_id):
            raise NotFound(f"no experiment {experiment_id!r}", experiment=experiment_id)
        self._changes += 1
        self.live.remove(experiment_id)
        self._changed()

    def _serve(self, experiment: Experiment) -> None:
        self._changes += 1
        self.live.put(experiment)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def report(self, experiment_id: str) -> ExperimentReport:
        experiment = (await self.get(experiment_id)).experiment
        if self._recorder is not None:
            await self._recorder.flush()
        records = await self.store.turn_records(experiment_id)
        return ExperimentReport(experiment, report(records, experiment.names))

    async def feedback(self, message_id: str, user: str, value: int) -> None:
        tag = await self.store.give_feedback(message_id, user, value)
        if tag is not None:
            self._observer.feedback_given(tag.experiment_id, tag.variant, value)

    async def release(
        self,
        character_id: str,
        *,
        version: str | None = None,
        percent: float | None = None,
        killed: bool | None = None,
        control_version: str | None = None,
    ) -> StoredExperiment:
        """A gray release: variant ``new`` gets ``version`` for ``percent`` % of the
        character's users, control keeps the old version. The first call names the version;
        later ones ramp (``percent``) or kill (``killed``)."""
        experiment_id = release_id(character_id)
        existing = await self.store.get(experiment_id)
        if existing is None:
            if version is None:
                raise InvalidInput(f"{experiment_id} does not exist yet: name the --version")
            return await self.create(
                self._new_release(character_id, version, percent or 0.0, control_version)
            )
        changes: dict[str, Any] = {}
        if killed is not None:
            changes["killed"] = killed
        variant: dict[str, Any] = {}
        if percent is not None:
            variant["percent"] = percent
        if version is not None:
            variant["character_version"] = self._kept(character_id, version)
        if variant:
            changes["variants"] = {RELEASE_VARIANT: variant}
        if control_version is not None:
            changes["control"] = {"character_version": self._kept(character_id, control_version)}
        return await self.change(experiment_id, changes)

    def _new_release(
        self, character_id: str, version: str, percent: float, control_version: str | None
    ) -> dict[str, Any]:
        new = self._kept(character_id, version)
        if control_version is not None:
            old = self._kept(character_id, control_version)
        else:
            older = [v.hash for v in self._catalog.versions(character_id) if v.hash != new]
            if not older:
                raise InvalidInput(
                    f"character {character_id!r} has no version other than {new[:12]} to keep "
                    "control on; name it (--control, a hash from GET "
                    f"/api/characters/{character_id}/versions)"
                )
            old = older[0]  # the newest other: the current one, or the one just replaced
        return {
            "id": release_id(character_id),
            "targeting": {"characters": [character_id]},
            "control": {"character_version": old},
            "variants": [{"name": RELEASE_VARIANT, "percent": percent, "character_version": new}],
        }

    def _kept(self, character_id: str, version: str) -> str:
        """The full hash of a kept version (raises ``NotFound``/``CharacterNotFound``)."""
        return self._catalog.get_version(character_id, version).hash


def merged(experiment: Experiment, changes: Mapping[str, Any]) -> dict[str, Any]:
    data = experiment_data(experiment)
    for key, value in changes.items():
        if key == "variants" and isinstance(value, Mapping):
            by_name = {v["name"]: v for v in data["variants"]}
            for name, fields in value.items():
                if name not in by_name:
                    raise InvalidInput(f"experiment {experiment.id!r} has no variant {name!r}")
                if not isinstance(fields, Mapping):
                    raise InvalidInput(f"variants.{name} must be a mapping of fields")
                by_name[name].update(fields)
        else:
            data[key] = value
    return data
