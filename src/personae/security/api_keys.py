"""API keys: ``pk_<id>_<secret>``. The id (8 hex characters) is visible and names the key in
listings, logs and the audit; the secret (256 random bits) is shown once and only its SHA-256
is stored. A plain hash is right for a random secret of that size: there is nothing to guess,
so a slow password hash would only cost time on every request."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from personae.core.ports import ApiKeys, KeyStore
from personae.core.types import TENANT_SEPARATOR, AccessRole, ApiKey, IssuedKey
from personae.errors import Conflict, InvalidInput, NotFound, StorageUnavailable

PREFIX = "pk_"
_ID_CHARS = 8
_KEY = re.compile(r"^pk_([0-9a-f]{8})_([A-Za-z0-9_-]{20,200})$")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NAME_MAX = 256


@dataclass(frozen=True, slots=True)
class PresentedKey:
    key_id: str
    secret: str


def parse_key(token: str) -> PresentedKey | None:
    """The parts of a ``pk_`` key, or None if ``token`` does not have its shape."""
    match = _KEY.match(token)
    return PresentedKey(match[1], match[2]) if match else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    # Constant time: how long the comparison takes says nothing about the stored hash.
    return hmac.compare_digest(hash_secret(secret).encode(), stored_hash.encode())


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s``: a positive duration."""
    match = _DURATION.match(text.strip())
    if not match or int(match[1]) == 0:
        raise InvalidInput(f"{text!r} is not a duration such as 30d, 12h or 90m")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def check_name(what: str, value: str) -> str:
    if not value or len(value) > _NAME_MAX or TENANT_SEPARATOR in value or not value.isprintable():
        raise InvalidInput(
            f"{what} must be 1..{_NAME_MAX} printable characters without {TENANT_SEPARATOR!r}"
        )
    return value


class KeyRegistry(ApiKeys):
    """Issues and revokes keys in a ``KeyStore``, and looks them up for the authenticator
    with a short cache; a revoke through this registry takes effect at once, one made by
    another node at once when it announces it (``forget``), by the CLI within ``cache_s``."""

    def __init__(self, store: KeyStore, *, cache_s: float = 5.0) -> None:
        self.store = store
        self.cache_s = cache_s
        # A key is known to exist (created here, or announced by another node): seals at once.
        self.keys_exist = False
        self.on_change: Callable[[], None] | None = None  # other nodes forget at once
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def issue(
        self,
        *,
        role: AccessRole,
        subject: str,
        tenant: str,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        check_name("subject", subject)
        check_name("tenant", tenant)
        created = datetime.now(UTC)
        if expires_at is not None and expires_at <= created:
            raise InvalidInput("the expiry must be in the future")
        for _ in range(5):  # 32-bit ids: a clash is rare, and then we draw again
            key_id = secrets.token_hex(_ID_CHARS // 2)
            secret = secrets.token_urlsafe(32)
            key = ApiKey(
                id=key_id,
                secret_hash=hash_secret(secret),
                role=role,
                subject=subject,
                tenant=tenant,
                created_at=created,
                expires_at=expires_at,
            )
            try:
                await self.store.add(key)
            except Conflict:
                continue
            self.keys_exist = True
            self._changed()
            return IssuedKey(key=key, token=f"{PREFIX}{key_id}_{secret}")
        raise Conflict("could not find a free key id")  # pragma: no cover - 5 clashes in a row

    async def all_keys(self) -> list[ApiKey]:
        return await self.store.all_keys()

    async def revoke(self, key_id: str) -> ApiKey:
        revoked = await self.store.revoke(key_id, datetime.now(UTC))
        self._cache.pop(key_id, None)
        if revoked is None:
            raise NotFound(f"unknown API key {key_id!r}", key_id=key_id)
        self._changed()
        return revoked

    def forget(self) -> None:
        """Another node issued or revoked a key: look every key up afresh."""
        self._cache.clear()
        self.keys_exist = True

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def lookup(self, key_id: str, now: float) -> ApiKey | None:
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        try:
            key = await self.store.get(key_id)
        except StorageUnavailable:
            # The shared key store is away: nothing can be issued or revoked meanwhile, so
            # a key seen before still answers as it did; one never seen fails.
            if cached is None:
                raise
            return cached[1]
        if len(self._cache) > 10_000:  # bounded: unknown ids must not grow it without end
            self._cache.clear()
        self._cache[key_id] = (now, key)
        return key
