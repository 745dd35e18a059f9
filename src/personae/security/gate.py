"""The ``RequestGate``: each request of a caller counts against the budgets of its role, per
key and (for callers acting for an end user) per user; tokens of finished replies are spent
from the same budgets. The caller is kept in a context variable for the rest of the request's
task, which is where the model call it starts is audited (``AuditObserver``)."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass

from limits.aio.storage import MemoryStorage, Storage

from personae.core.observe import TurnObserver
from personae.core.ports import RateLimiter, RequestGate
from personae.core.types import AccessRole, Caller
from personae.errors import RateLimited
from personae.security.rate_limits import SlidingWindowLimiter
from personae.settings import RateLimitSettings

current_caller: ContextVar[Caller | None] = ContextVar("personae_caller", default=None)


@dataclass(frozen=True, slots=True)
class RoleBudgets:
    requests: RateLimiter | None  # None: unlimited
    tokens: RateLimiter | None


class CallerGate(RequestGate):
    def __init__(
        self, budgets: Mapping[AccessRole, RoleBudgets], *, observer: TurnObserver | None = None
    ) -> None:
        self.budgets = dict(budgets)
        self._observer = observer or TurnObserver()

    @classmethod
    def from_settings(
        cls,
        settings: RateLimitSettings,
        *,
        observer: TurnObserver | None = None,
        storage: Storage | None = None,  # shared (Redis) across nodes; default: this process
    ) -> CallerGate:
        storage = storage or MemoryStorage()

        def limiter(role: AccessRole, kind: str, per_minute: int | None) -> RateLimiter | None:
            if per_minute is None:
                return None
            return SlidingWindowLimiter(per_minute, namespace=f"{kind}-{role}", storage=storage)

        budgets = {}
        for role in AccessRole:
            limits = getattr(settings, role.value)
            budgets[role] = RoleBudgets(
                requests=limiter(role, "requests", limits.requests_per_minute),
                tokens=limiter(role, "tokens", limits.tokens_per_minute),
            )
        return cls(budgets, observer=observer)

    async def admit(self, caller: Caller) -> None:
        current_caller.set(caller)
        waits = [await limiter.hit(key) for limiter, key in self._buckets(caller, "requests")]
        # A spent token budget refuses the next request too; tokens are charged afterwards.
        waits += [await limiter.hit(key, 0) for limiter, key in self._buckets(caller, "tokens")]
        refused = [w for w in waits if w is not None]
        if refused:
            self._observer.request_rejected("rate_limited")
            raise RateLimited(
                "too many requests or tokens for now; retry later", retry_after=max(refused)
            )

    async def spend_tokens(self, caller: Caller, tokens: int) -> None:
        for limiter, key in self._buckets(caller, "tokens"):
            await limiter.spend(key, tokens)

    def _buckets(self, caller: Caller, kind: str) -> list[tuple[RateLimiter, str]]:
        """The caller's own budget (its role's rate), and, unless it is an admin, the end
        user's (the user role's rate) whichever key or service acts for them."""
        principal = caller.principal
        found: list[tuple[RateLimiter, str]] = []
        own = getattr(self.budgets[principal.role], kind)
        if own is not None:
            found.append((own, principal.limit_key))
        if not principal.is_admin:
            per_user = getattr(self.budgets[AccessRole.USER], kind)
            if per_user is not None:
                found.append((per_user, f"user:{caller.user}"))
        return found
