"""Discord, with discord.py: messages in guild channels (answered when the bot is mentioned or
replied to, or a character is named) and in DMs, replies streamed by editing the message (at
most one edit a second; Discord allows five per five seconds per channel).

Each ``listen`` builds a fresh ``discord.Client``, logs in, and runs its gateway connection
without discord.py's own reconnect loop, so a lost gateway ends ``listen`` and the runner
reconnects with our backoff and bounds. discord.py handles short 429s itself (it waits
and retries); waits longer than ``max_ratelimit_s`` come back as ``PlatformRateLimited``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from datetime import UTC
from typing import Any

import aiohttp

with warnings.catch_warnings():
    # discord.py's voice support imports audioop, deprecated in Python 3.11 (gone in 3.13,
    # where discord.py uses audioop-lts); we use no voice.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

from personae.channels.errors import (
    MessageGone,
    PlatformError,
    PlatformRateLimited,
    PlatformRejected,
    PlatformUnavailable,
)
from personae.core.channels import PlatformMessage, Receive
from personae.core.ports import Channel
from personae.errors import ConfigurationError
from personae.plugins.specs import ChannelConfig

_OPTIONS = {"max_ratelimit_s", "max_chars"}


def translate(
    message: discord.Message, me: discord.abc.User, platform: str
) -> PlatformMessage | None:
    """A discord.py message as a ``PlatformMessage``; None for bots (ourselves included),
    system messages and messages without text."""
    if message.author.bot or message.type not in (
        discord.MessageType.default,
        discord.MessageType.reply,
    ):
        return None
    mention = re.compile(rf"<@!?{me.id}>")
    text = mention.sub("", message.content).strip()
    if not text:
        return None
    reference = message.reference
    replied = reference.resolved if reference is not None else None
    mentioned = any(user.id == me.id for user in message.mentions) or (
        isinstance(replied, discord.Message) and replied.author.id == me.id
    )
    return PlatformMessage(
        platform=platform,
        platform_user=str(message.author.id),
        chat=str(message.channel.id),
        text=text,
        message_id=str(message.id),
        reply_to=str(reference.message_id) if reference and reference.message_id else None,
        sent_at=message.created_at.astimezone(UTC),
        user_name=message.author.display_name,
        group=not isinstance(message.channel, discord.DMChannel),  # guild, thread, group DM
        mentioned=mentioned,
        attachments=tuple(
            {
                "kind": "file",
                "id": str(a.id),
                "name": a.filename,
                "size": a.size,
                "content_type": a.content_type,
            }
            for a in message.attachments
        ),
        raw={"id": str(message.id), "channel_id": str(message.channel.id)},
    )


class _Client(discord.Client):
    """The library's client, handing messages and the connection to the channel."""

    def __init__(
        self, channel: DiscordChannel, receive: Receive, connected: Callable[[], None]
    ) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: enable it for the bot in the portal
        super().__init__(intents=intents, max_ratelimit_timeout=channel.max_ratelimit_s)
        self._channel = channel
        self._receive = receive
        self._connected = connected

    async def on_connect(self) -> None:
        self._connected()

    async def on_message(self, message: discord.Message) -> None:
        if self.user is None:
            return
        translated = translate(message, self.user, self._channel.name)
        if translated is not None:
            await self._receive(translated)


class DiscordChannel(Channel):
    max_chars = 2000
    edits = True
    min_edit_interval_s = 1.0

    def __init__(
        self, name: str, *, token: str, max_ratelimit_s: float = 30.0, max_chars: int = 2000
    ) -> None:
        if not token:
            raise ConfigurationError(f"channel {name}: Discord needs a bot token (token_env)")
        self.name = name
        self.max_chars = max_chars
        self.max_ratelimit_s = max_ratelimit_s
        self._token = token
        self.client: _Client | None = None

    @classmethod
    def from_config(cls, config: ChannelConfig) -> DiscordChannel:
        unknown = set(config.options) - _OPTIONS
        if unknown:
            raise ConfigurationError(f"channel {config.name}: unknown options {sorted(unknown)}")
        return cls(config.name, token=config.token or "", **config.options)

    async def listen(self, receive: Receive, connected: Callable[[], None]) -> None:
        client = _Client(self, receive, connected)
        try:
            await _call(client.login(self._token))
            self.client = client
            await _call(client.connect(reconnect=False))
            raise PlatformUnavailable("the Discord gateway closed the connection")
        finally:
            self.client = None
            await client.close()

    async def send(self, chat: str, text: str, *, reply_to: str | None = None) -> str:
        target = self._messageable(chat)
        reference = (
            discord.MessageReference(
                message_id=int(reply_to), channel_id=int(chat), fail_if_not_exists=False
            )
            if reply_to and reply_to.isdigit()
            else None
        )
        if reference is None:
            sent = await _call(target.send(text))
        else:
            sent = await _call(target.send(text, reference=reference))
        return str(sent.id)

    async def edit(self, chat: str, message_id: str, text: str) -> None:
        message = self._messageable(chat).get_partial_message(int(message_id))
        try:
            await _call(message.edit(content=text))
        except PlatformRejected as exc:
            if exc.context.get("status") == 404:
                raise MessageGone(exc.message) from exc
            raise

    async def typing(self, chat: str) -> None:
        await _call(self._messageable(chat).typing())  # awaited: one typing trigger

    def _messageable(self, chat: str) -> discord.PartialMessageable:
        client = self.client
        if client is None or not chat.isdigit():
            raise PlatformUnavailable("not connected to Discord")
        return client.get_partial_messageable(int(chat))


async def _call(request: Any) -> Any:
    """Await a discord.py call, its errors as ``PlatformError``."""
    try:
        return await request
    except discord.RateLimited as exc:
        raise PlatformRateLimited("Discord rate limit", retry_after=exc.retry_after) from exc
    except discord.LoginFailure as exc:  # an operator must fix the token; keep what waits
        raise PlatformUnavailable(f"Discord refused the token: {exc}") from exc
    except discord.DiscordServerError as exc:
        raise PlatformUnavailable(f"Discord answered {exc.status}") from exc
    except discord.HTTPException as exc:
        if exc.status == 429:  # one discord.py would not wait out itself (a Cloudflare limit)
            retry_after = float(exc.response.headers.get("Retry-After", "1"))
            raise PlatformRateLimited("Discord rate limit", retry_after=retry_after) from exc
        raise PlatformRejected(
            f"Discord refused the request: {exc.text}", status=exc.status
        ) from exc
    except (discord.ConnectionClosed, discord.GatewayNotFound, aiohttp.ClientError, OSError) as exc:
        raise PlatformUnavailable(f"Discord connection failed: {type(exc).__name__}") from exc
    except PlatformError:
        raise
