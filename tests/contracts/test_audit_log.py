"""The AuditLog contract, on SQLite and on PostgreSQL alike: entries in one batch, read back
oldest first with their details, filtered by actor, action and time, at most ``limit``."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from personae.core.ports import AuditLog
from personae.core.types import AuditEntry
from tests.contracts.shared_stores import Backend


@pytest.fixture
async def log(shared_backend: Backend) -> AsyncIterator[AuditLog]:
    async with shared_backend.audit() as opened:
        yield opened


async def test_an_entry_reads_back_with_every_field(log: AuditLog) -> None:
    at = datetime(2026, 5, 4, 3, 2, 1, 654321, tzinfo=UTC)
    details = {"erased": {"users": 1, "messages": 3}, "ok": True, "ratio": 0.5, "none": None}
    entry = AuditEntry(
        "user.delete",
        "ops",
        outcome="denied",
        target="alice",
        role="admin",
        tenant="acme",
        key_id="k1",
        client="127.0.0.1",
        details=details,
        at=at,
    )
    await log.record([entry])
    [stored] = await log.query()
    assert stored.id is not None
    assert stored == dataclasses.replace(entry, id=stored.id)
    assert stored.at == at  # aware, in UTC, to the microsecond


async def test_a_missing_time_is_now_and_odd_details_survive(log: AuditLog) -> None:
    before = datetime.now(UTC)
    # Not JSON by nature (a date) becomes its text; a NUL and non-ASCII text come back as is.
    await log.record(
        [AuditEntry("model.call", "bot", details={"when": before, "name": "nul\x00 é 字"})]
    )
    [stored] = await log.query()
    assert stored.at is not None
    assert before <= stored.at <= datetime.now(UTC)
    assert stored.details == {"when": str(before), "name": "nul\x00 é 字"}
    assert stored.target is None
    assert stored.outcome == "ok"


async def test_entries_come_back_in_the_order_written_and_filters_combine(log: AuditLog) -> None:
    now = datetime.now(UTC)
    await log.record(
        [
            AuditEntry("key.create", "ops", at=now - timedelta(days=3)),
            AuditEntry("key.create", "cli", at=now - timedelta(days=2)),
            AuditEntry("key.revoke", "ops", at=now - timedelta(days=1)),
        ]
    )
    # Order is the order written, not the time each entry names.
    await log.record([AuditEntry("user.export", "ops", at=now - timedelta(days=5))])
    actions = [(e.action, e.actor) for e in await log.query()]
    assert actions == [
        ("key.create", "ops"),
        ("key.create", "cli"),
        ("key.revoke", "ops"),
        ("user.export", "ops"),
    ]
    ids = [e.id for e in await log.query()]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4
    assert [e.actor for e in await log.query(action="key.create")] == ["ops", "cli"]
    assert [e.action for e in await log.query(actor="ops")] == [
        "key.create",
        "key.revoke",
        "user.export",
    ]
    since = now - timedelta(days=2)
    assert [e.actor for e in await log.query(since=since)] == ["cli", "ops"]  # at >= since
    assert [e.action for e in await log.query(actor="ops", since=since)] == ["key.revoke"]
    assert await log.query(actor="nobody") == []
    assert [e.actor for e in await log.query(limit=2)] == ["ops", "cli"]
    assert await log.query(limit=0) == []
    assert await log.query(limit=-1) == []  # not "no limit"


async def test_an_empty_batch_writes_nothing(log: AuditLog, shared_backend: Backend) -> None:
    before = await shared_backend.snapshot()
    await log.record([])
    assert await shared_backend.snapshot() == before
    assert await log.query() == []


async def test_a_query_right_after_a_record_sees_it(shared_backend: Backend) -> None:
    # Two logs on one storage, as a node's writer and the admin API's reader may be.
    async with shared_backend.audit() as writer, shared_backend.audit() as reader:
        for n in range(5):
            await writer.record([AuditEntry("model.call", f"u{n}")])
            assert [e.actor for e in await reader.query()][-1] == f"u{n}"
