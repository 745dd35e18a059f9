"""The KeyStore contract, and API keys end to end over it (shown once, hashed at rest, expiry,
revoke, another process's changes), on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from personae.core.types import AccessRole, ApiKey, Principal
from personae.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from personae.security.api_keys import KeyRegistry, parse_key
from personae.security.auth import OPEN_PRINCIPAL, KeyAuthenticator
from tests.conftest import ManualClock
from tests.contracts.shared_stores import Backend


@pytest.fixture
async def registry(shared_backend: Backend) -> AsyncIterator[KeyRegistry]:
    async with shared_backend.keys() as store:
        yield KeyRegistry(store, cache_s=5.0)


def key(key_id: str, created_at: datetime, **kwargs: object) -> ApiKey:
    values: dict[str, object] = {
        "id": key_id,
        "secret_hash": "ab" * 32,
        "role": AccessRole.USER,
        "subject": "alice",
        "tenant": "default",
        "created_at": created_at,
    }
    return ApiKey(**(values | kwargs))  # type: ignore[arg-type]


# --- the store ------------------------------------------------------------------------------


async def test_a_key_reads_back_exactly_as_stored(shared_backend: Backend) -> None:
    moment = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    stored = key(
        "k1",
        moment,
        role=AccessRole.SERVICE,
        subject="bot",
        tenant="acme",
        expires_at=moment + timedelta(days=30),
        revoked_at=None,
    )
    async with shared_backend.keys() as store:
        assert not await store.any_created()
        await store.add(stored)
        assert await store.get("k1") == stored
        assert await store.get("nope") is None
        assert await store.any_created()


async def test_a_taken_id_is_a_conflict_and_changes_nothing(shared_backend: Backend) -> None:
    moment = datetime.now(UTC)
    async with shared_backend.keys() as store:
        await store.add(key("k1", moment))
        before = await shared_backend.snapshot()
        with pytest.raises(Conflict, match="k1"):
            await store.add(key("k1", moment, subject="mallory", role=AccessRole.ADMIN))
        assert await shared_backend.snapshot() == before
        assert (await store.get("k1")) == key("k1", moment)


async def test_keys_are_listed_oldest_first_ids_breaking_ties(shared_backend: Backend) -> None:
    moment = datetime.now(UTC)
    async with shared_backend.keys() as store:
        for key_id, age in (("b", 1), ("Z", 1), ("a", 2), ("c", 0)):
            await store.add(key(key_id, moment - timedelta(days=age)))
        assert [k.id for k in await store.all_keys()] == ["a", "Z", "b", "c"]


async def test_revoking_keeps_the_first_time_and_an_unknown_key_is_none(
    shared_backend: Backend,
) -> None:
    moment = datetime.now(UTC)
    async with shared_backend.keys() as store:
        await store.add(key("k1", moment))
        first = await store.revoke("k1", moment + timedelta(hours=1))
        assert first is not None
        assert first.revoked_at == moment + timedelta(hours=1)
        again = await store.revoke("k1", moment + timedelta(hours=2))
        assert again == first
        assert await store.revoke("nope", moment) is None
        assert await store.any_created()  # a revoked key still counts


# --- the registry over it -------------------------------------------------------------------


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(
    registry: KeyRegistry, shared_backend: Backend
) -> None:
    issued = await registry.issue(role=AccessRole.USER, subject="alice", tenant="acme")
    parts = parse_key(issued.token)
    assert parts is not None
    assert parts.key_id == issued.key.id
    assert issued.token.startswith(f"pk_{issued.key.id}_")
    assert len(parts.secret) >= 40
    at_rest = repr(await shared_backend.snapshot())
    assert issued.key.id in at_rest  # the visible prefix identifies it
    assert parts.secret not in at_rest
    assert issued.token not in at_rest
    listed = await registry.all_keys()
    assert [(k.id, k.role, k.subject, k.tenant) for k in listed] == [
        (issued.key.id, AccessRole.USER, "alice", "acme")
    ]
    assert not hasattr(listed[0], "token")


async def test_the_key_authenticates_as_its_owner_role_and_tenant(registry: KeyRegistry) -> None:
    issued = await registry.issue(role=AccessRole.SERVICE, subject="bot", tenant="acme")
    auth = KeyAuthenticator(registry=registry)
    principal = await auth.authenticate(issued.token)
    assert principal == Principal(
        "bot", role=AccessRole.SERVICE, tenant="acme", key_id=issued.key.id
    )


async def test_a_wrong_secret_or_unknown_id_is_refused(registry: KeyRegistry) -> None:
    issued = await registry.issue(role=AccessRole.USER, subject="alice", tenant="default")
    auth = KeyAuthenticator(registry=registry)
    tampered = issued.token[:-4] + ("aaaa" if not issued.token.endswith("aaaa") else "bbbb")
    for bad in (tampered, "pk_00000000_" + "x" * 43, "not-a-key", ""):
        with pytest.raises(NotAuthenticated):
            await auth.authenticate(bad)


async def test_an_expired_key_is_refused(registry: KeyRegistry) -> None:
    now = datetime.now(UTC)
    issued = await registry.issue(
        role=AccessRole.USER, subject="alice", tenant="default", expires_at=now + timedelta(days=1)
    )
    later = {"now": now}
    auth = KeyAuthenticator(registry=registry, wall_clock=lambda: later["now"])
    assert (await auth.authenticate(issued.token)).subject == "alice"
    later["now"] = now + timedelta(days=1, seconds=1)
    with pytest.raises(NotAuthenticated, match="expired"):
        await auth.authenticate(issued.token)
    with pytest.raises(InvalidInput, match="future"):
        await registry.issue(
            role=AccessRole.USER, subject="a", tenant="default", expires_at=now - timedelta(1)
        )


async def test_a_revoked_key_is_refused_at_once_in_this_process(registry: KeyRegistry) -> None:
    issued = await registry.issue(role=AccessRole.ADMIN, subject="ops", tenant="default")
    auth = KeyAuthenticator(registry=registry)
    assert (await auth.authenticate(issued.token)).is_admin  # now cached
    revoked = await registry.revoke(issued.key.id)
    assert revoked.revoked_at is not None
    with pytest.raises(NotAuthenticated, match="revoked"):
        await auth.authenticate(issued.token)
    again = await registry.revoke(issued.key.id)
    assert again.revoked_at == revoked.revoked_at  # the first revocation time stays
    with pytest.raises(NotFound):
        await registry.revoke("ffffffff")


async def test_a_revoke_by_another_process_is_seen_when_the_cache_expires(
    registry: KeyRegistry, shared_backend: Backend, clock: ManualClock
) -> None:
    issued = await registry.issue(role=AccessRole.USER, subject="alice", tenant="default")
    auth = KeyAuthenticator(registry=registry, clock=clock)
    await auth.authenticate(issued.token)
    async with shared_backend.keys() as other:  # the CLI, or another node
        await KeyRegistry(other).revoke(issued.key.id)
    await auth.authenticate(issued.token)  # still cached
    clock.now += 5.0
    with pytest.raises(NotAuthenticated, match="revoked"):
        await auth.authenticate(issued.token)


async def test_open_until_a_key_exists_and_closed_for_good_after(registry: KeyRegistry) -> None:
    auth = KeyAuthenticator(registry=registry)
    assert await auth.authenticate(None) == OPEN_PRINCIPAL
    issued = await registry.issue(role=AccessRole.USER, subject="alice", tenant="default")
    await registry.revoke(issued.key.id)
    with pytest.raises(NotAuthenticated, match="required"):
        await auth.authenticate(None)  # revoking every key does not open the server again


async def test_a_first_key_made_by_another_process_closes_the_server_within_the_cache_time(
    registry: KeyRegistry, shared_backend: Backend, clock: ManualClock
) -> None:
    auth = KeyAuthenticator(registry=registry, clock=clock)
    assert await auth.authenticate(None) == OPEN_PRINCIPAL
    async with shared_backend.keys() as other:  # the CLI, or another node
        await KeyRegistry(other).issue(role=AccessRole.ADMIN, subject="ops", tenant="default")
    assert await auth.authenticate(None) == OPEN_PRINCIPAL  # the store is not asked again yet
    clock.now += 5.0
    with pytest.raises(NotAuthenticated, match="required"):
        await auth.authenticate(None)


async def test_settings_keys_are_admin_keys_and_close_the_server(registry: KeyRegistry) -> None:
    auth = KeyAuthenticator(static_keys=["sk-one", "sk-two"], registry=registry)
    principal = await auth.authenticate("sk-two")
    assert principal.is_admin
    assert principal.subject == "key-1"
    with pytest.raises(NotAuthenticated):
        await auth.authenticate(None)


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 300, "tab\there"])
async def test_names_that_could_cross_tenants_are_refused(registry: KeyRegistry, bad: str) -> None:
    with pytest.raises(InvalidInput):
        await registry.issue(role=AccessRole.USER, subject=bad, tenant="default")
    with pytest.raises(InvalidInput):
        await registry.issue(role=AccessRole.USER, subject="ok", tenant=bad)
    assert await registry.all_keys() == []
