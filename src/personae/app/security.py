"""Keys, JWTs, rate limits and the audit log, wired for one runtime (docs/operations.md,
"Security"). The stores are the configured backend's (``app/database.py: Stores``): with
``storage: postgres`` every node shares its keys and audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from limits.aio.storage import Storage

from personae.app.database import Stores, open_stores, sqlite_database
from personae.core.observe import TurnObserver
from personae.core.ports import AuditLog
from personae.security.api_keys import KeyRegistry
from personae.security.audit import AuditObserver, AuditWriter
from personae.security.auth import KeyAuthenticator
from personae.security.gate import CallerGate
from personae.security.jwt_tokens import JwtVerifier
from personae.settings import Settings
from personae.transports.gateway import SecurityPorts


@dataclass(frozen=True, slots=True)
class Security:
    authenticator: KeyAuthenticator
    ports: SecurityPorts  # what the transports get
    observer: TurnObserver  # audits model calls and spends their tokens from the budgets
    registry: KeyRegistry  # ports.keys, as itself: other nodes' changes reach its cache


async def open_security(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    metrics_observer: TurnObserver,
    stores: Stores,
    rate_storage: Storage | None = None,
) -> Security:
    """Security over the open ``stores``; rows still queued are written before the stack
    closes the log."""
    audit, users = stores.audit, stores.users
    registry = KeyRegistry(stores.keys, cache_s=settings.security.key_cache_s)
    jwt = settings.security.jwt
    authenticator = KeyAuthenticator(
        static_keys=(k.get_secret_value() for k in settings.api_keys),
        registry=registry,
        jwt=JwtVerifier.from_settings(jwt) if jwt.enabled else None,
    )
    # Whether the server is open (no key yet) is asked once now, while the store is surely
    # up: a shared store that goes away later leaves that answer standing.
    await authenticator.learn_if_open()
    gate = CallerGate.from_settings(
        settings.security.rate_limits, observer=metrics_observer, storage=rate_storage
    )
    writer = AuditWriter(audit) if settings.security.audit_model_calls else None
    if writer is not None:
        stack.push_async_callback(writer.drain)
    return Security(
        authenticator=authenticator,
        ports=SecurityPorts(keys=registry, audit=audit, users=users, gate=gate),
        observer=AuditObserver(writer, gate),
        registry=registry,
    )


@asynccontextmanager
async def open_key_admin(settings: Settings) -> AsyncIterator[tuple[KeyRegistry, AuditLog]]:
    """The key registry and the audit log, for ``personae keys`` (no server needed), on the
    configured backend: a key made here is the one every node reads."""
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(sqlite_database(settings))
        stores = await open_stores(settings, stack, database)
        yield KeyRegistry(stores.keys, cache_s=0), stores.audit
