"""Turn records and replays, wired: the SQLite record store and the sampling recorder the
live ``ChatService`` gets, and the replay runner over the live store with a scratch store
(a temporary SQLite file, deleted after) for each replay."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.experiments.spec import Experiment
from personae.core.memory.stage import PromptMemory
from personae.core.ports import ConversationStore
from personae.core.replay import ReplayPlan, ReplayReport, plan_replay
from personae.core.routing import ModelRoutes
from personae.core.safety import ContentPolicy
from personae.core.service import ChatService, TurnSettings
from personae.core.turn_record import TurnRecord, TurnRecords
from personae.core.turn_recorder import SampledRecorder, TurnRecorder
from personae.replay.html import render_html
from personae.replay.runner import ReplayRunner
from personae.settings import Settings
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.database import SqliteDatabase
from personae.storage.sqlite.turn_records import SqliteTurnRecords


async def open_turn_records(
    settings: Settings, stack: AsyncExitStack, database: SqliteDatabase
) -> tuple[SqliteTurnRecords, SampledRecorder]:
    """The record store (closed by ``stack``) and the recorder over it; the recorder's queue
    is drained before the store closes."""
    records = await stack.enter_async_context(SqliteTurnRecords(database))
    recorder = SampledRecorder(records, rate=settings.replay.record_rate)
    stack.push_async_callback(recorder.drain)
    return records, recorder


@asynccontextmanager
async def scratch_store() -> AsyncIterator[ConversationStore]:
    """An empty conversation store in a temporary folder, deleted on exit: a replay writes
    here and nowhere else."""
    with tempfile.TemporaryDirectory(prefix="personae-replay-") as folder:
        async with SqliteConversationStore(Path(folder) / "replay.sqlite3") as store:
            yield store


@dataclass(frozen=True, slots=True)
class ServerReplays:
    """``core.replay.Replays`` for the admin API and the CLI."""

    runner: ReplayRunner

    def plan(self, conversation_id: str, **changes: Any) -> ReplayPlan:
        return plan_replay(conversation_id, experiments=self.runner.experiments, **changes)

    async def run(self, plan: ReplayPlan) -> ReplayReport:
        return await self.runner.run(plan)

    def html(self, report: ReplayReport) -> str:
        return render_html(report)


def server_replays(
    settings: Settings,
    *,
    store: ConversationStore,
    records: TurnRecords | None,
    catalog: CharacterCatalog,
    routes: ModelRoutes,
    turn: TurnSettings,
    content: ContentPolicy,
    experiments: Callable[[str], Experiment | None] = lambda _id: None,
) -> ServerReplays:
    """Replays through a ``ChatService`` like the live one (same characters, backends,
    moderation and turn settings) on a scratch store, without skills or live memory."""

    def service(
        scratch: ConversationStore, recorder: TurnRecorder, memory: PromptMemory
    ) -> ChatService:
        return ChatService(
            catalog=catalog,
            store=scratch,
            routes=routes,
            lock=LocalConversationLock(),
            settings=turn,
            content=content,
            memory=memory,
            recorder=recorder,
        )

    runner = ReplayRunner(
        live=store,
        records=records,
        routes=routes,
        service=service,
        scratch=scratch_store,
        experiments=experiments,
        max_turns=settings.replay.max_turns,
    )
    return ServerReplays(runner)


async def read_turn_record(settings: Settings, turn_id: str) -> TurnRecord | None:
    """One recorded turn from the configured database (``personae trace``)."""
    async with SqliteTurnRecords(settings.database_path) as records:
        return await records.get(turn_id)


def report_path(settings: Settings, conversation_id: str, moment: datetime) -> Path:
    """Where a replay's HTML report goes by default: ``replay.reports_dir`` (or
    ``<data_dir>/replays``), named by the conversation and the time."""
    folder = settings.replay.reports_dir or settings.data_dir / "replays"
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in conversation_id)
    return folder / f"replay-{safe}-{moment:%Y%m%dT%H%M%S}.html"
