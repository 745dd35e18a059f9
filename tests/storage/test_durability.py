"""An acknowledged message survives ``kill -9``, with either ``storage.synchronous``: the
writer tells a caller only after the commit, and a commit in WAL mode is in the OS's hands
even when SQLite does not fsync it (``normal``)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from personae.storage.sqlite import SqliteConversationStore

# Writes as fast as it can from several concurrent turns (so group commit is at work), and
# prints each message id once its write is acknowledged; killed mid-stream by the test.
CHILD = """
import asyncio, sys
from pathlib import Path
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.database import SqliteDatabase

async def user(store, n):
    for i in range(100_000):
        turn = await store.open_turn(external_user_id=f"u{n}", character_id="a", text=str(i))
        print(turn.message.id, flush=True)

async def main():
    db = SqliteDatabase(Path(sys.argv[1]), synchronous=sys.argv[2])
    async with db, SqliteConversationStore(db) as store:
        await asyncio.gather(*(user(store, n) for n in range(8)))

asyncio.run(main())
"""

ACKS_BEFORE_KILL = 300


@pytest.mark.parametrize("synchronous", ["normal", "full"])
async def test_an_acknowledged_message_survives_kill_9(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "personae.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(path), synchronous, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    acked: list[str] = []
    try:
        async with asyncio.timeout(60):
            while len(acked) < ACKS_BEFORE_KILL:
                line = await child.stdout.readline()
                assert line, "the writer died before it was killed"
                acked.append(line.decode().strip())
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    async with SqliteConversationStore(path) as store:
        stored: set[str] = set()
        for n in range(8):
            user = await store.get_user(f"u{n}")
            if user is None:
                continue
            for conversation in await store.list_conversations(user.id):
                messages = await store.list_messages(conversation.id, limit=100_000)
                stored.update(m.id for m in messages)
                # Nothing half-written either: seqs run without a gap.
                assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    assert set(acked) <= stored
