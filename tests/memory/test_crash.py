"""Acceptance #5.2, crash safety: a real ``personae serve`` process with memory on takes a burst
of WebSocket turns and is killed with SIGKILL in the middle of it. After a restart, every
message the server acknowledged has its memory item and, once the embedding job has caught
up (the packaged MiniLM), its vector; and ``PRAGMA integrity_check`` is ok."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from asyncio.subprocess import Process
from collections.abc import Sequence
from pathlib import Path

import pytest

from personae.client import PersonaeClient
from personae.client.async_client import ClientError
from personae.client.async_client import Reply as Sent
from personae.storage.sqlite.connection import Connection, connect
from tests.llm.fake_openai_server import FakeOpenAIServer, Reply

REPO = Path(__file__).parents[2]
USERS = 4
MESSAGES_PER_USER = 12
DATABASE = Path("data/personae.sqlite3")
KILL_AFTER_ACKS = 30  # of 48: some turns are streaming, some queued, some not yet sent

pytestmark = pytest.mark.slow


def server_env(tmp_path: Path, backend_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env.update(
        PERSONAE_LLM_BASE_URL=backend_url,
        PERSONAE_LLM_MODEL="fake-model",
        PERSONAE_LLM_API_KEY="sk-fake-not-secret",
        PERSONAE_DATA_DIR=str(tmp_path / "data"),
        PERSONAE_CHARACTERS_DIR=str(REPO / "characters"),
        PERSONAE_CONFIG_DIR=str(tmp_path),
        PERSONAE_MEMORY_ENABLED="true",  # off by default
        PERSONAE_MEMORY_EMBEDDER="minilm",
        PERSONAE_MEMORY_IDLE_S="0.2",
    )
    return env


async def start(tmp_path: Path, env: dict[str, str], name: str) -> tuple[Process, str]:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "personae", "serve", "--port", "0"),
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    marker = "personae listening on "
    deadline = time.monotonic() + 180  # the first torch import of a busy machine is slow
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(marker):
                return process, line.removeprefix(marker).strip()
        if process.returncode is not None:
            raise AssertionError(f"the server exited early:\n{log.read_text()}")
        await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError(f"the server did not start:\n{log.read_text()}")


async def burst(url: str, acked: list[Sent], enough: asyncio.Event) -> None:
    """Users sending back to back without waiting for replies: each send returns at its ack
    (the message is stored), so the server holds a queue of turns per conversation."""

    async def user(n: int) -> None:
        async with PersonaeClient(url, user=f"user-{n}", reconnect=False) as client:
            for i in range(MESSAGES_PER_USER):
                reply = await client.send("mira", f"Note {i} of user {n}: I like kite number {i}.")
                acked.append(reply)
                if len(acked) >= KILL_AFTER_ACKS:
                    enough.set()

    await asyncio.gather(*(user(n) for n in range(USERS)), return_exceptions=True)


def memory_of(conn: Connection, message_ids: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
    """Each message's memory items: (pk, embedding model or '')."""
    rows = conn.execute(
        "SELECT j.value, i.pk, coalesce(i.embedding_model, '') FROM memory_items i,"
        " json_each(i.source_message_ids) j WHERE j.value IN (SELECT value FROM json_each(?))"
        " AND i.kind = 'message'",
        (json.dumps(list(message_ids)),),
    ).fetchall()
    found: dict[str, list[tuple[int, str]]] = {}
    for message_id, pk, model in rows:
        found.setdefault(message_id, []).append((pk, model))
    return found


async def wait_until_embedded(db: Path, message_ids: Sequence[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        conn = connect(db, read_only=True)
        try:
            items = memory_of(conn, message_ids)
        finally:
            conn.close()
        pending = [i for i in message_ids if not items.get(i) or any(not m for _, m in items[i])]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} acknowledged messages still lack a vector")
        await asyncio.sleep(0.5)


async def test_kill_9_mid_burst_loses_no_acknowledged_memory(tmp_path: Path) -> None:
    with FakeOpenAIServer() as backend:
        # Replies of about a second each, so the kill lands mid-stream and mid-queue.
        backend.otherwise = Reply([f" word{i}" for i in range(20)], token_delay_s=0.05)
        env = server_env(tmp_path, backend.base_url)
        process, url = await start(tmp_path, env, "first")
        acked: list[Sent] = []
        enough = asyncio.Event()
        sending = asyncio.create_task(burst(url, acked, enough))
        try:
            async with asyncio.timeout(120):
                await enough.wait()
        finally:
            process.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(process.wait(), 30) == -signal.SIGKILL
            with contextlib.suppress(Exception):
                await sending
            for reply in acked:  # the replies the kill cut off end with the connection
                with contextlib.suppress(ClientError):
                    await reply.done()
        acknowledged = [reply.message_id for reply in acked]
        assert KILL_AFTER_ACKS <= len(acknowledged) < USERS * MESSAGES_PER_USER

        process, url = await start(tmp_path, env, "second")
        try:
            await wait_until_embedded(tmp_path / DATABASE, acknowledged, 240)
        finally:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 60) in {0, -signal.SIGTERM}

    conn = connect(tmp_path / DATABASE, read_only=True)
    try:
        assert [tuple(r) for r in conn.execute("PRAGMA integrity_check")] == [("ok",)]
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT id FROM messages WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(acknowledged),),
            )
        }
        assert stored == set(acknowledged)  # every ack was a durable write
        replies = conn.execute(
            "SELECT count(*) FROM messages WHERE role = 'assistant' AND status = 'complete'"
            " AND content LIKE '%word19%'"
        ).fetchone()[0]
        assert replies < len(acknowledged)  # the kill came with turns still to answer
        items = memory_of(conn, acknowledged)
        assert set(items) == set(acknowledged)  # each with its memory item
        pks = [pk for found in items.values() for pk, _ in found]
        (table,) = [
            f"memory_vectors_{row[0]}"
            for row in conn.execute("SELECT id FROM memory_vector_spaces").fetchall()
        ]
        vectors = conn.execute(
            f"SELECT count(*) FROM {table} WHERE item_pk IN (SELECT value FROM json_each(?))",
            (json.dumps(pks),),
        ).fetchone()[0]
        assert vectors == len(pks)  # and each item its vector
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
