"""Platform users as Personae users: a platform user is its own user
(``<platform>:<platform user id>``, created with its first message) until it redeems a
one-time link code that a signed-in Personae user asked for; from then on it is that user,
and memory, conversations and state follow the person across channels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from personae.core.channels import ChannelDirectory, hash_link_code, new_link_code


def platform_user_id(platform: str, platform_user: str) -> str:
    """The Personae user id of a platform user that has not linked an account."""
    return f"{platform}:{platform_user}"


class Identities:
    def __init__(
        self,
        directory: ChannelDirectory,
        *,
        code_ttl_s: float = 600.0,
        now: Callable[[], datetime],
    ) -> None:
        self.directory = directory
        self.code_ttl_s = code_ttl_s
        self._now = now

    async def user_for(self, platform: str, platform_user: str) -> str:
        linked = await self.directory.user_for(platform, platform_user)
        return linked or platform_user_id(platform, platform_user)

    async def issue_code(self, user: str) -> tuple[str, datetime]:
        """A new one-time code for ``user`` and when it expires; only its hash is stored."""
        code = new_link_code()
        expires_at = self._now() + timedelta(seconds=self.code_ttl_s)
        await self.directory.add_link_code(hash_link_code(code), user, expires_at)
        return code, expires_at

    async def redeem(self, platform: str, platform_user: str, code: str) -> str | None:
        """Link the platform user to the code's user; None for an unknown or expired code."""
        user = await self.directory.redeem_link_code(hash_link_code(code), self._now())
        if user is not None:
            await self.directory.link(platform, platform_user, user, self._now())
        return user
