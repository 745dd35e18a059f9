"""``ExperimentStore`` on SQLite (migration 0009): definitions as JSON in their YAML shape,
one row per turn a variant ran, and feedback per (message, user)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlean

from personae.core.experiments.report import TurnRecord
from personae.core.experiments.spec import Experiment, experiment_data, parse_experiment
from personae.core.experiments.store import (
    API_SOURCE,
    ExperimentStore,
    StoredExperiment,
    TurnRow,
)
from personae.core.overrides import ExperimentTag
from personae.errors import Conflict, NotFound, PermissionDenied
from personae.storage.sqlite.connection import Connection, transaction
from personae.storage.sqlite.resource import SqliteResource
from personae.storage.sqlite.rows import as_text, now

_COLUMNS = "SELECT id, spec, source, created_at, updated_at FROM experiments"
_FAILED = ("failed", "error", "incomplete")  # outcomes a report counts as errors


class SqliteExperimentStore(SqliteResource, ExperimentStore):
    async def all(self) -> list[StoredExperiment]:
        def work(conn: Connection) -> list[StoredExperiment]:
            return [_stored(row) for row in conn.execute(f"{_COLUMNS} ORDER BY id")]

        return await self._db.read("list the experiments", work)

    async def get(self, experiment_id: str) -> StoredExperiment | None:
        def work(conn: Connection) -> StoredExperiment | None:
            row = conn.execute(f"{_COLUMNS} WHERE id = ?", (experiment_id,)).fetchone()
            return None if row is None else _stored(row)

        return await self._db.read("read the experiment", work)

    async def create(self, experiment: Experiment, source: str = API_SOURCE) -> StoredExperiment:
        def work(conn: Connection) -> StoredExperiment:
            with transaction(conn):
                at = as_text(now())
                conn.execute(
                    "INSERT INTO experiments (id, spec, source, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (experiment.id, _spec(experiment), source, at, at),
                )
                return _read(conn, experiment.id)

        try:
            return await self._db.run("store the experiment", work)
        except Exception as exc:
            if isinstance(exc.__cause__, sqlean.IntegrityError):
                raise Conflict(
                    f"an experiment with id {experiment.id!r} exists", experiment=experiment.id
                ) from exc
            raise

    async def save(self, experiment: Experiment) -> StoredExperiment:
        def work(conn: Connection) -> StoredExperiment | None:
            with transaction(conn):
                changed = conn.execute(
                    "UPDATE experiments SET spec = ?, updated_at = ? WHERE id = ?",
                    (_spec(experiment), as_text(now()), experiment.id),
                ).rowcount
                return _read(conn, experiment.id) if changed else None

        stored = await self._db.run("update the experiment", work)
        if stored is None:
            raise NotFound(f"no experiment {experiment.id!r}", experiment=experiment.id)
        return stored

    async def delete(self, experiment_id: str) -> bool:
        def work(conn: Connection) -> bool:
            with transaction(conn):
                deleted = conn.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,))
                return bool(deleted.rowcount > 0)

        return await self._db.run("delete the experiment", work)

    async def sync_file(
        self, experiment: Experiment, source: str, file_hash: str
    ) -> StoredExperiment:
        def work(conn: Connection) -> StoredExperiment:
            with transaction(conn):
                at = as_text(now())
                conn.execute(
                    "INSERT INTO experiments (id, spec, source, file_hash, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                    " spec = excluded.spec, source = excluded.source,"
                    " file_hash = excluded.file_hash, updated_at = excluded.updated_at"
                    " WHERE experiments.file_hash IS NOT excluded.file_hash",
                    (experiment.id, _spec(experiment), source, file_hash, at, at),
                )
                return _read(conn, experiment.id)

        return await self._db.run("store the experiment file", work)

    async def record_turns(self, rows: Sequence[TurnRow]) -> None:
        def work(conn: Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    "INSERT INTO experiment_turns (experiment_id, variant, user_id,"
                    " conversation_id, message_id, outcome, latency_ms, tokens, at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            r.tag.experiment_id,
                            r.tag.variant,
                            r.user,
                            r.conversation,
                            r.message,
                            r.outcome,
                            r.latency_ms,
                            r.tokens,
                            as_text(r.at),
                        )
                        for r in rows
                    ],
                )

        if rows:
            await self._db.run("record experiment turns", work)

    async def turn_records(self, experiment_id: str) -> list[TurnRecord]:
        def work(conn: Connection) -> list[TurnRecord]:
            rows = conn.execute(
                "SELECT t.variant, t.user_id, t.latency_ms, t.outcome, t.tokens, f.value"
                " FROM experiment_turns t LEFT JOIN message_feedback f"
                " ON f.message_id = t.message_id AND f.user_id = t.user_id"
                " WHERE t.experiment_id = ? ORDER BY t.id",
                (experiment_id,),
            )
            return [
                TurnRecord(
                    variant=row["variant"],
                    user=row["user_id"],
                    latency_ms=row["latency_ms"],
                    error=row["outcome"] in _FAILED,
                    tokens=row["tokens"],
                    feedback=row["value"],
                )
                for row in rows
            ]

        return await self._db.read("read the experiment's turns", work)

    async def give_feedback(self, message_id: str, user: str, value: int) -> ExperimentTag | None:
        if value not in (-1, 1):
            raise ValueError(f"feedback is +1 or -1, not {value}")

        def work(conn: Connection) -> ExperimentTag | None:
            with transaction(conn):
                owner = conn.execute(
                    "SELECT u.external_id, m.role FROM messages m"
                    " JOIN conversations c ON c.id = m.conversation_id"
                    " JOIN users u ON u.id = c.user_id WHERE m.id = ?",
                    (message_id,),
                ).fetchone()
                if owner is None or owner["role"] != "assistant":
                    raise NotFound(f"no reply {message_id!r}", message_id=message_id)
                if owner["external_id"] != user:
                    raise PermissionDenied("only the conversation's user gives it feedback")
                conn.execute(
                    "INSERT INTO message_feedback (message_id, user_id, value, at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (message_id, user_id)"
                    " DO UPDATE SET value = excluded.value, at = excluded.at",
                    (message_id, user, value, as_text(now())),
                )
                turn = conn.execute(
                    "SELECT experiment_id, variant FROM experiment_turns WHERE message_id = ?",
                    (message_id,),
                ).fetchone()
                return None if turn is None else ExperimentTag(turn[0], turn[1])

        return await self._db.run("store the feedback", work)


def _spec(experiment: Experiment) -> str:
    return json.dumps(experiment_data(experiment), sort_keys=True)


def _read(conn: Connection, experiment_id: str) -> StoredExperiment:
    return _stored(conn.execute(f"{_COLUMNS} WHERE id = ?", (experiment_id,)).fetchone())


def _stored(row: Any) -> StoredExperiment:
    return StoredExperiment(
        experiment=parse_experiment(json.loads(row["spec"])),
        source=row["source"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )
