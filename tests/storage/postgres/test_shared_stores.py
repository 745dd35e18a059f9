"""With ``storage: postgres``, what nodes must share is in PostgreSQL, not in each node's
SQLite file: a key issued through one node authenticates on another, the audit log holds
every node's rows, a user's export and erasure cover their conversations and memory in
PostgreSQL, and retention purges PostgreSQL's messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlean

from personae.app import build_app
from personae.app.background import start_retention
from personae.app.database import open_stores, sqlite_database
from personae.app.security import open_key_admin
from personae.core.supervisor import Supervisor
from personae.core.types import AccessRole, AuditEntry
from personae.errors import NotAuthenticated, StorageUnavailable
from personae.security.api_keys import KeyRegistry
from personae.security.auth import OPEN_PRINCIPAL, KeyAuthenticator
from personae.settings import Settings
from personae.storage.postgres import (
    PostgresAuditLog,
    PostgresAuditRetention,
    PostgresDatabase,
    PostgresKeyStore,
    PostgresMessageRetention,
    PostgresUserData,
)
from personae.testing import FakeChatModel
from tests.conftest import ManualClock
from tests.live_server import live_server
from tests.postgres_server import PostgresServer
from tests.transports.conftest import make_settings

ADMIN = "sk-admin-shared-test"
FULL_TEXT_MEMORY = {"enabled": True, "embedder": "none"}


def on_postgres(tmp_path: Path, pg_url: str, **overrides: Any) -> Settings:
    return make_settings(
        tmp_path,
        api_keys=[ADMIN],
        storage={"backend": "postgres", "postgres_url": pg_url, "postgres_pool_max": 4},
        **overrides,
    )


def pg_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


def sqlite_count(db: Path, table: str) -> int:
    conn = sqlean.connect(str(db))
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def call(url: str, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, url + path, headers=headers, timeout=30, **kwargs)


def chat(url: str, token: str, user: str, text: str) -> None:
    body = {"model": "aria", "user": user, "messages": [{"role": "user", "content": text}]}
    answer = call(url, token, "POST", "/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text


@pytest.fixture
def two_nodes(tmp_path: Path, pg_url: str) -> Iterator[tuple[str, str, Settings]]:
    """Two servers, each with its own data folder (its own SQLite file), on one database."""
    with ExitStack() as stack:
        urls = []
        for name in ("a", "b"):
            settings = on_postgres(tmp_path / name, pg_url, security={"key_cache_s": 0})
            app = build_app(settings, backends={"fake": FakeChatModel()})
            urls.append(stack.enter_context(live_server(app)))
        yield urls[0], urls[1], settings


async def test_a_key_issued_through_one_nodes_registry_authenticates_on_another(
    pg_url: str, clock: ManualClock
) -> None:
    async with (
        PostgresKeyStore(PostgresDatabase(pg_url, max_size=2)) as store_a,
        PostgresKeyStore(PostgresDatabase(pg_url, max_size=2)) as store_b,
    ):
        on_a, on_b = KeyRegistry(store_a, cache_s=5.0), KeyRegistry(store_b, cache_s=5.0)
        auth_b = KeyAuthenticator(registry=on_b, clock=clock)
        issued = await on_a.issue(role=AccessRole.USER, subject="alice", tenant="acme")
        principal = await auth_b.authenticate(issued.token)
        assert (principal.subject, principal.tenant, principal.key_id) == (
            "alice",
            "acme",
            issued.key.id,
        )
        await on_a.revoke(issued.key.id)
        clock.now += 5.0  # node B's cache expires
        with pytest.raises(NotAuthenticated, match="revoked"):
            await auth_b.authenticate(issued.token)


def test_two_servers_share_keys_and_the_audit_log(two_nodes: tuple[str, str, Settings]) -> None:
    a, b, settings = two_nodes
    made = call(a, ADMIN, "POST", "/api/admin/keys", json={"role": "user", "subject": "dave"})
    assert made.status_code == 201, made.text
    token, key_id = made.json()["token"], made.json()["id"]
    assert call(b, token, "GET", "/v1/models").status_code == 200  # known on B
    assert [k["id"] for k in call(b, ADMIN, "GET", "/api/admin/keys").json()] == [key_id]
    assert call(b, ADMIN, "DELETE", f"/api/admin/keys/{key_id}").status_code == 200
    refused = call(a, token, "GET", "/v1/models")  # revoked on B, refused on A
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    rows = call(a, ADMIN, "GET", "/api/admin/audit").json()
    assert [(r["action"], r["target"]) for r in rows] == [
        ("key.create", key_id),  # written by A
        ("key.revoke", key_id),  # written by B
    ]
    assert sqlite_count(settings.database_path, "api_keys") == 0  # nothing in a node's file
    assert sqlite_count(settings.database_path, "audit_log") == 0


def test_export_and_erasure_cover_the_users_conversations_and_memory_in_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    settings = on_postgres(tmp_path, pg_url, memory=FULL_TEXT_MEMORY)
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        chat(url, ADMIN, "alice", "My name is Alice. I love sailing.")
        chat(url, ADMIN, "bob", "My name is Bob.")
        assert sqlite_count(settings.database_path, "messages") == 0  # all in PostgreSQL

        exported = call(url, ADMIN, "GET", "/api/users/alice/export")
        assert exported.status_code == 200, exported.text
        data = exported.json()
        [conversation] = data["conversations"]
        assert [m["content"] for m in conversation["messages"]][-2:] == [
            "My name is Alice. I love sailing.",
            "Hello from the fake model.",
        ]
        assert any("sailing" in m["text"] for m in data["memory"])
        assert "Bob" not in str(data)

        erased = call(url, ADMIN, "DELETE", "/api/users/alice")
        assert erased.status_code == 200, erased.text
        body = erased.json()
        assert body["erased"]["users"] == 1
        assert body["erased"]["conversations"] == 1
        assert body["erased"]["messages"] == len(conversation["messages"])
        assert body["memory"] == {"erased": True, "items": len(data["memory"])}
        assert call(url, ADMIN, "GET", "/api/users/alice/export").status_code == 404

    users = pg_rows(pg_url, "SELECT external_id FROM users ORDER BY external_id")
    assert users == [("bob",)]
    contents = [r[0] for r in pg_rows(pg_url, "SELECT content FROM messages")]
    assert not any("Alice" in c for c in contents)
    assert any("Bob" in c for c in contents)  # bob's data is untouched
    memory = [r[0] for r in pg_rows(pg_url, "SELECT text FROM memory_items")]
    assert memory  # bob's
    assert not any("Alice" in t or "sailing" in t for t in memory)
    [audit] = pg_rows(pg_url, "SELECT details::text FROM audit_log WHERE action = 'user.delete'")
    assert '"memory_erased":true' in audit[0]


async def test_the_runtime_wires_every_shared_store_to_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    settings = on_postgres(tmp_path, pg_url, retention={"messages_days": 1, "audit_days": 1})
    async with AsyncExitStack() as stack:
        sqlite = await stack.enter_async_context(sqlite_database(settings))
        stores = await open_stores(settings, stack, sqlite)
        assert isinstance(stores.keys, PostgresKeyStore)
        assert isinstance(stores.audit, PostgresAuditLog)
        assert isinstance(stores.users, PostgresUserData)
        assert isinstance(stores.message_retention, PostgresMessageRetention)
        assert isinstance(stores.audit_retention, PostgresAuditRetention)
        await stores.conversations.open_turn(
            external_user_id="sam", character_id="aria", text="an old message"
        )
        await stores.audit.record([AuditEntry("key.create", "ops")])
        supervisor = Supervisor()
        stack.push_async_callback(supervisor.close)
        job = await start_retention(settings, supervisor, metrics=None, stores=stores)
        assert job is not None
        later = datetime.now(UTC) + timedelta(days=2)
        counts = await type(job)(job.kinds, clock=lambda: later).run_once()
        assert counts == {"messages": 1, "audit": 1}
    assert pg_rows(pg_url, "SELECT count(*) FROM messages") == [(0,)]
    assert pg_rows(pg_url, "SELECT count(*) FROM audit_log") == [(0,)]


async def test_the_keys_command_issues_into_postgres(tmp_path: Path, pg_url: str) -> None:
    settings = on_postgres(tmp_path, pg_url)
    async with open_key_admin(settings) as (registry, audit):
        issued = await registry.issue(role=AccessRole.ADMIN, subject="ops", tenant="default")
        await audit.record([AuditEntry("key.create", "cli", target=issued.key.id)])
    assert pg_rows(pg_url, "SELECT id FROM api_keys") == [(issued.key.id,)]
    assert pg_rows(pg_url, "SELECT actor FROM audit_log") == [("cli",)]
    assert sqlite_count(settings.database_path, "api_keys") == 0


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    server = PostgresServer()  # the test's own: it is stopped and started again
    server.start()
    yield server
    server.remove()


async def test_keys_seen_before_an_outage_still_answer_during_it(
    own_server: PostgresServer, clock: ManualClock
) -> None:
    database = PostgresDatabase(own_server.url(), max_size=2, wait_timeout_s=1)
    async with PostgresKeyStore(database) as store:
        open_auth = KeyAuthenticator(registry=KeyRegistry(store), clock=clock)
        assert await open_auth.authenticate(None) == OPEN_PRINCIPAL  # asked: no key yet
        started = KeyAuthenticator(registry=KeyRegistry(store), clock=clock)
        await started.learn_if_open()  # as a node does at start-up
        issued = await KeyRegistry(store).issue(
            role=AccessRole.USER, subject="alice", tenant="default"
        )
        with pytest.raises(NotAuthenticated, match="required"):
            await started.authenticate(None)  # the start-up answer is not a cached one
        registry = KeyRegistry(store, cache_s=5.0)
        auth = KeyAuthenticator(registry=registry, clock=clock)
        assert (await auth.authenticate(issued.token)).subject == "alice"

        await asyncio.to_thread(own_server.stop)
        clock.now += 60.0  # every cached answer is stale, and the store cannot be asked
        # No key can be issued or revoked while the store is away: the last answers hold.
        assert (await auth.authenticate(issued.token)).subject == "alice"
        assert await open_auth.authenticate(None) == OPEN_PRINCIPAL
        # What was never seen cannot be answered: it fails (retryable), never lets in.
        never_asked = KeyAuthenticator(registry=KeyRegistry(store), clock=clock)
        with pytest.raises(StorageUnavailable):
            await never_asked.authenticate(None)
        unknown = "pk_0badc0de_" + "x" * 43
        with pytest.raises(StorageUnavailable):
            await auth.authenticate(unknown)

        await asyncio.to_thread(own_server.start)
        # Back (once the pool has reconnected): asked afresh, the key made before the outage
        # now seals the server that was open.
        deadline = time.monotonic() + 20
        while await open_auth.is_open():
            assert time.monotonic() < deadline, "never asked the store again"
            clock.now += 60.0
            await asyncio.sleep(0.1)
        with pytest.raises(NotAuthenticated, match="required"):
            await open_auth.authenticate(None)
        assert (await auth.authenticate(issued.token)).subject == "alice"
