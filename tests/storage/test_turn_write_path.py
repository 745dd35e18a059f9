"""What a chat turn costs the database, counted where it is paid: the BEGINs on the writer's
connection, with the runtime wired as in production (every store on one database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from personae.app import open_runtime
from personae.app.runtime import Runtime
from personae.core.types import InboundMessage
from personae.settings import Settings
from personae.testing import FakeChatModel

ARIA = "id: aria\nname: Aria\ndescription: A test character.\n"


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    folder = tmp_path / "characters"
    folder.mkdir()
    (folder / "aria.yaml").write_text(ARIA)
    settings = Settings(
        data_dir=tmp_path / "data",
        characters_dir=folder,
        watch_characters=False,
        memory={"embedder": "none"},  # memory capture stays in the message's transaction
        security={"audit_model_calls": False},  # audit rows are batched off the turn's path
    )
    async with open_runtime(settings, backends={"fake": FakeChatModel()}) as opened:
        yield opened


class Begins:
    """Counts the transactions the writer opens that store messages (background jobs, such
    as the reminder dispatcher, write on their own schedule and are not the turn's cost)."""

    def __init__(self, runtime: Runtime) -> None:
        writer = runtime.store._db.writer  # type: ignore[attr-defined]
        assert writer is not None
        self.count = 0
        self._counted = True
        writer._conn.set_trace_callback(self._saw)

    def _saw(self, statement: str) -> None:
        if statement.startswith("BEGIN"):
            self._counted = False
        elif not self._counted and statement.startswith("INSERT INTO messages"):
            self._counted = True
            self.count += 1


async def turn(runtime: Runtime, user: str) -> None:
    async for _ in runtime.service.turn(InboundMessage(user, "aria", "hello there")):
        pass


async def test_every_store_of_the_runtime_shares_one_writer(runtime: Runtime) -> None:
    assert runtime.security is not None
    databases = {
        id(runtime.store._db),  # type: ignore[attr-defined]
        id(runtime.security.audit._db),  # type: ignore[attr-defined]
        id(runtime.security.users._db),  # type: ignore[attr-defined]
    }
    assert len(databases) == 1


async def test_a_lone_turn_takes_two_transactions(runtime: Runtime) -> None:
    await turn(runtime, "warm")
    begins = Begins(runtime)
    for n in range(5):
        await turn(runtime, f"u{n}")
    # The user message (durable before the model is asked), then the reply.
    assert begins.count == 2 * 5


async def test_concurrent_turns_share_their_commits(runtime: Runtime) -> None:
    await turn(runtime, "warm")
    begins = Begins(runtime)
    turns = 40
    await asyncio.gather(*(turn(runtime, f"u{n}") for n in range(turns)))
    # 80 writes; waiting writes commit together, so far fewer than one BEGIN per write.
    assert begins.count < turns
    for n in range(turns):
        user = await runtime.store.get_user(f"u{n}")
        assert user is not None
        (conversation,) = await runtime.store.list_conversations(user.id)
        messages = await runtime.store.list_messages(conversation.id)
        assert [m.role.value for m in messages] == ["user", "assistant"]
