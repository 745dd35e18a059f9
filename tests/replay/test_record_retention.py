"""``replay.records_days`` puts turn records under the retention job (``core/retention.py``):
records older than that go, newer ones and the messages they explain stay; unset, no
retention task is started for them."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from personae.app.background import start_retention
from personae.app.database import open_stores, sqlite_database
from personae.app.runtime import open_runtime
from personae.core.supervisor import Supervisor
from personae.core.types import Role
from personae.testing import FakeChatModel
from tests.replay.helpers import replay_settings, say


async def test_old_records_are_purged_and_their_messages_stay(tmp_path: Path) -> None:
    settings = replay_settings(tmp_path, replay={"record_rate": 1.0, "records_days": 2})
    async with open_runtime(settings, backends={"a": FakeChatModel(), "b": FakeChatModel()}) as rt:
        done = await say(rt, "hello")
        await rt.service.recorder.drain()
        assert rt.turn_records is not None
        async with AsyncExitStack() as stack:
            database = await stack.enter_async_context(sqlite_database(settings))
            stores = await open_stores(settings, stack, database)
            supervisor = Supervisor()
            stack.push_async_callback(supervisor.close)
            job = await start_retention(
                settings, supervisor, metrics=None, stores=stores, turn_records=rt.turn_records
            )
            assert job is not None
            assert set(job.kinds) == {"turn_records"}
            assert await job.run_once() == {"turn_records": 0}  # a fresh record stays
            assert await rt.turn_records.get(done.message.id) is not None
            later = datetime.now(UTC) + timedelta(days=3)
            job = type(job)(job.kinds, clock=lambda: later)
            assert await job.run_once() == {"turn_records": 1}
        assert await rt.turn_records.get(done.message.id) is None
        messages = await rt.store.list_messages(done.conversation_id)
        assert [m.role for m in messages][-1] is Role.ASSISTANT  # the reply itself stays


async def test_without_records_days_no_retention_runs(tmp_path: Path) -> None:
    settings = replay_settings(tmp_path)
    async with open_runtime(settings, backends={"a": FakeChatModel(), "b": FakeChatModel()}) as rt:
        assert "retention" not in rt.supervisor.status()
