"""API-key authentication. The operations issue brings hashed keys with roles and expiry;
today keys come from settings, and with none configured the server is open (local use)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from personae.core.ports import Authenticator
from personae.core.types import Principal
from personae.errors import NotAuthenticated


class StaticKeyAuthenticator(Authenticator):
    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in keys if k)

    @property
    def open(self) -> bool:
        return not self._keys

    async def authenticate(self, credential: str | None) -> Principal:
        if self.open:
            return Principal(subject="local")
        if not credential:
            raise NotAuthenticated("an API key is required (Authorization: Bearer <key>)")
        presented = credential.encode()
        # Compare against every key in constant time, so timing tells nothing about which
        # keys exist.
        matches = [hmac.compare_digest(presented, key) for key in self._keys]
        if not any(matches):
            raise NotAuthenticated("the API key is not valid")
        return Principal(subject=f"key-{matches.index(True)}")
