"""The experiments in force in this process, and the one place a turn gets its variant.

``ChatService.turn`` calls ``assign`` at the start of every one-to-one turn, whatever
transport brought it: the first experiment (by id) whose targeting matches the message
decides the variant, and the message leaves with that variant's overrides (control's for
control) and an ``ExperimentTag``. A message that already carries overrides (a replay) is
left alone. Changes (the admin API, the YAML folder, ``personae release``) replace an
experiment here at once, so a ramp or the kill switch holds from the next turn on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from personae.core.experiments.assignment import assign
from personae.core.experiments.spec import CONTROL, Experiment
from personae.core.overrides import ExperimentTag
from personae.core.types import InboundMessage


class LiveExperiments:
    def __init__(self, experiments: Iterable[Experiment] = ()) -> None:
        self._by_id: dict[str, Experiment] = {}
        self._ordered: tuple[Experiment, ...] = ()
        self.replace(experiments)

    def replace(self, experiments: Iterable[Experiment]) -> None:
        """Serve exactly these experiments."""
        self._by_id = {e.id: e for e in experiments}
        self._reorder()

    def put(self, experiment: Experiment) -> None:
        self._by_id[experiment.id] = experiment
        self._reorder()

    def remove(self, experiment_id: str) -> bool:
        found = self._by_id.pop(experiment_id, None) is not None
        self._reorder()
        return found

    def get(self, experiment_id: str) -> Experiment | None:
        return self._by_id.get(experiment_id)

    def all(self) -> tuple[Experiment, ...]:
        return self._ordered

    def _reorder(self) -> None:
        # One tuple swapped whole: a turn reading it never sees half a change.
        self._ordered = tuple(self._by_id[i] for i in sorted(self._by_id))

    def assign(self, inbound: InboundMessage) -> InboundMessage:
        """``inbound`` with the overrides and tag of its variant, or as it was when no
        experiment targets it (or it is a group's message, or a replay's)."""
        if inbound.overrides is not None or not inbound.character_id:
            return inbound
        for experiment in self._ordered:
            if not experiment.targeting.matches(
                character=inbound.character_id,
                role=inbound.role,
                channel=inbound.channel,
                tags=inbound.tags,
            ):
                continue
            chosen = assign(
                experiment, inbound.user, role=inbound.role, forced=inbound.forced_variant
            )
            variant = experiment.variant(chosen.variant)
            overrides = experiment.control if variant is None else variant.overrides
            return replace(
                inbound,
                overrides=overrides,
                experiment=ExperimentTag(experiment.id, chosen.variant),
            )
        return inbound


__all__ = ["CONTROL", "LiveExperiments"]
