"""Authentication: stored API keys (``pk_...``), keys from settings (admin keys, as before
roles existed), and optional JWTs. With none of them configured and no key ever created,
the server is open, as an admin, for local use."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from personae.core.ports import Authenticator
from personae.core.types import AccessRole, Principal
from personae.errors import NotAuthenticated, StorageUnavailable
from personae.security.api_keys import KeyRegistry, parse_key, secret_matches
from personae.security.jwt_tokens import JwtVerifier, looks_like_jwt

OPEN_PRINCIPAL = Principal(subject="local", role=AccessRole.ADMIN)
_INVALID = "the API key is not valid"


class KeyAuthenticator(Authenticator):
    def __init__(
        self,
        *,
        static_keys: Iterable[str] = (),
        registry: KeyRegistry | None = None,
        jwt: JwtVerifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._static = tuple(k.encode() for k in static_keys if k)
        self._registry = registry
        self._jwt = jwt
        self._clock = clock  # for the key cache
        self._wall_clock = wall_clock  # for expiry
        # Once a key exists the server stays closed. Until then: a key created through this
        # server's registry (or announced by another node) closes it at once; one created by
        # the CLI is seen within the registry's cache time, as its revocations are. Asking
        # the store on every request cost a round trip per request (bench/gateway_overhead.py).
        self._sealed = bool(self._static) or jwt is not None
        self._open_checked: float | None = None
        self._answered = False  # the store has said whether a key exists, at least once

    async def is_open(self) -> bool:
        if self._sealed or self._registry is None:
            return not self._sealed
        if self._registry.keys_exist:
            self._sealed = True
            return False
        now = self._clock()
        if self._open_checked is None or now - self._open_checked >= self._registry.cache_s:
            try:
                self._sealed = await self._registry.store.any_created()
            except StorageUnavailable:
                # The shared key store is away (storage: postgres): no key can be created
                # meanwhile, so the last answer (open) still holds; never answered: closed.
                if not self._answered:
                    raise
                return True
            self._answered = True
            self._open_checked = now
        return not self._sealed

    async def learn_if_open(self) -> None:
        """Ask the store now whether a key exists (at start-up, while it is surely up), so
        that an outage later keeps an answer; the first request still asks afresh."""
        if not self._sealed and self._registry is not None:
            self._sealed = await self._registry.store.any_created()
            self._answered = True

    async def authenticate(self, credential: str | None) -> Principal:
        if await self.is_open():
            return OPEN_PRINCIPAL
        if not credential:
            raise NotAuthenticated("an API key is required (Authorization: Bearer <key>)")
        presented = parse_key(credential)
        if presented is not None and self._registry is not None:
            key = await self._registry.lookup(presented.key_id, self._clock())
            if key is None or not secret_matches(presented.secret, key.secret_hash):
                raise NotAuthenticated(_INVALID)
            if key.revoked_at is not None:
                raise NotAuthenticated("the API key was revoked")
            if not key.usable_at(self._wall_clock()):
                raise NotAuthenticated("the API key has expired")
            return Principal(key.subject, role=key.role, tenant=key.tenant, key_id=key.id)
        if self._jwt is not None and looks_like_jwt(credential):
            return self._jwt.verify(credential)
        return self._static_key(credential)

    def _static_key(self, credential: str) -> Principal:
        presented = credential.encode()
        # Compare against every key in constant time, so timing tells nothing about which
        # keys exist.
        matches = [hmac.compare_digest(presented, key) for key in self._static]
        if not any(matches):
            raise NotAuthenticated(_INVALID)
        return Principal(subject=f"key-{matches.index(True)}", role=AccessRole.ADMIN)
