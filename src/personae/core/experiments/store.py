"""The experiment store port: definitions, the turns each variant ran, and feedback.

``storage/sqlite/experiments.py`` implements it; the admin API, ``personae release`` and the
turn recorder use it through this port.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from personae.core.experiments.report import TurnRecord
from personae.core.experiments.spec import Experiment
from personae.core.overrides import ExperimentTag
from personae.core.ports import Resource

API_SOURCE = "api"


@dataclass(frozen=True, slots=True)
class StoredExperiment:
    experiment: Experiment
    source: str  # "api", or the YAML file it was read from
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TurnRow:
    """One turn a variant ran, as recorded (no text: ids, outcome, timings, tokens)."""

    tag: ExperimentTag
    user: str  # external id
    conversation: str | None
    message: str | None  # the stored reply; None when the turn stored none
    outcome: str
    latency_ms: float
    tokens: int
    at: datetime


class ExperimentStore(Resource, abc.ABC):
    @abc.abstractmethod
    async def all(self) -> list[StoredExperiment]: ...

    @abc.abstractmethod
    async def get(self, experiment_id: str) -> StoredExperiment | None: ...

    @abc.abstractmethod
    async def create(self, experiment: Experiment, source: str = API_SOURCE) -> StoredExperiment:
        """Raises ``Conflict`` when the id is taken."""

    @abc.abstractmethod
    async def save(self, experiment: Experiment) -> StoredExperiment:
        """Replace a stored experiment; raises ``NotFound`` when there is none."""

    @abc.abstractmethod
    async def delete(self, experiment_id: str) -> bool:
        """Forget the definition (its recorded turns stay, for the report)."""

    @abc.abstractmethod
    async def sync_file(
        self, experiment: Experiment, source: str, file_hash: str
    ) -> StoredExperiment:
        """A YAML file's experiment: stored when new or when the file changed since it was
        last read; otherwise the stored one (ramped or killed over the API since) stays."""

    @abc.abstractmethod
    async def record_turns(self, rows: Sequence[TurnRow]) -> None: ...

    @abc.abstractmethod
    async def turn_records(self, experiment_id: str) -> list[TurnRecord]:
        """Every recorded turn of the experiment, with the feedback its reply got."""

    @abc.abstractmethod
    async def give_feedback(self, message_id: str, user: str, value: int) -> ExperimentTag | None:
        """Thumbs up (+1) or down (-1) on a reply, once per (message, user): giving it again
        replaces it. Only the conversation's user may (``PermissionDenied``); an unknown or
        non-reply message is ``NotFound``. Returns the experiment that wrote the reply."""
