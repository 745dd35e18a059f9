"""Telegram, with python-telegram-bot: long polling or webhook mode, private and group chats,
commands, replies streamed by editing the message (at most one edit per second).

PTB sends, edits and parses. The long-poll loop reads ``getUpdates`` itself (over httpx, from
the same base URL) so that each update is parsed on its own: one malformed update is logged
and skipped instead of failing the whole batch forever at the same offset.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

import httpx
import structlog
import telegram
from telegram import error as tg_error
from telegram.constants import ChatAction
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from personae.channels.errors import (
    MessageGone,
    PlatformError,
    PlatformRateLimited,
    PlatformRejected,
    PlatformUnavailable,
)
from personae.channels.splitting import utf16_length
from personae.channels.webhook import raise_for_status
from personae.core.channels import PlatformMessage, PushChannel, Pushed, Receive
from personae.core.ports import Channel
from personae.errors import ConfigurationError, InvalidInput, NotAuthenticated
from personae.plugins.specs import ChannelConfig

log = structlog.get_logger(__name__)

# PTB's documented opt-in to its next major version's time periods (timedelta, not int): without
# it, building a RetryAfter warns (PTBDeprecationWarning) on every 429. Only PTB reads it.
os.environ.setdefault("PTB_TIMEDELTA", "true")

SECRET_HEADER = "x-telegram-bot-api-secret-token"
_OPTIONS = {"base_url", "mode", "webhook_url", "poll_timeout_s", "timeout_s"}


class TelegramChannel(Channel, PushChannel):
    max_chars = 4096  # counted in UTF-16 code units
    edits = True
    min_edit_interval_s = 1.0

    def __init__(
        self,
        name: str,
        *,
        token: str,
        base_url: str = "https://api.telegram.org",
        mode: str = "polling",
        webhook_url: str | None = None,
        secret: str | None = None,
        poll_timeout_s: int = 30,
        timeout_s: float = 10.0,
    ) -> None:
        if not token:
            raise ConfigurationError(f"channel {name}: Telegram needs a bot token (token_env)")
        if mode not in ("polling", "webhook"):
            raise ConfigurationError(f"channel {name}: mode must be polling or webhook")
        if mode == "webhook" and not (webhook_url and secret):
            raise ConfigurationError(
                f"channel {name}: webhook mode needs options.webhook_url and a secret (secret_env)"
            )
        self.name = name
        self.mode = mode
        self.webhook_url = webhook_url
        self._token = token
        self._secret = secret
        self.api = f"{base_url.rstrip('/')}/bot"
        self.poll_timeout_s = poll_timeout_s
        self.timeout_s = timeout_s
        self.bot: telegram.Bot | None = None
        self._poller: httpx.AsyncClient | None = None
        self._ready = False  # getMe answered: the bot knows its own id and username
        self.offset: int | None = None
        self.malformed = 0

    @classmethod
    def from_config(cls, config: ChannelConfig) -> TelegramChannel:
        unknown = set(config.options) - _OPTIONS
        if unknown:
            raise ConfigurationError(f"channel {config.name}: unknown options {sorted(unknown)}")
        return cls(config.name, token=config.token or "", secret=config.secret, **config.options)

    @staticmethod
    def measure(text: str) -> int:
        return utf16_length(text)

    async def start(self) -> None:
        request = HTTPXRequest(
            connection_pool_size=16,
            read_timeout=self.timeout_s,
            write_timeout=self.timeout_s,
            connect_timeout=self.timeout_s,
        )
        self.bot = telegram.Bot(self._token, base_url=self.api, request=request)
        self._poller = httpx.AsyncClient(timeout=self.poll_timeout_s + self.timeout_s)

    async def stop(self) -> None:
        if self._poller is not None:
            await self._poller.aclose()
        if self.bot is not None:
            await self.bot.shutdown()

    # --- inbound ------------------------------------------------------------------------------

    async def listen(self, receive: Receive, connected: Callable[[], None]) -> None:
        bot = self._bot()
        await _call(bot.initialize())  # getMe: our id and username, for mentions
        self._ready = True
        if self.mode == "webhook":
            assert self.webhook_url is not None
            await _call(
                bot.set_webhook(
                    self.webhook_url, secret_token=self._secret, drop_pending_updates=False
                )
            )
            connected()
            await asyncio.Event().wait()
        await _call(bot.delete_webhook())  # getUpdates is refused while a webhook is set
        connected()
        while True:
            for raw in await self._get_updates():
                message = self._parse(raw)
                if message is not None:
                    await receive(message)

    async def _get_updates(self) -> list[Any]:
        assert self._poller is not None
        params: dict[str, Any] = {"timeout": self.poll_timeout_s, "allowed_updates": '["message"]'}
        if self.offset is not None:
            params["offset"] = self.offset
        try:
            response = await self._poller.post(f"{self.api}{self._token}/getUpdates", data=params)
        except httpx.HTTPError as exc:
            raise PlatformUnavailable(f"getUpdates failed: {type(exc).__name__}") from exc
        if response.status_code == 429:
            retry_after = _json(response).get("parameters", {}).get("retry_after", 1)
            raise PlatformRateLimited("getUpdates rate limited", retry_after=float(retry_after))
        raise_for_status(response)
        result = _json(response).get("result")
        if not isinstance(result, list):
            raise PlatformUnavailable("getUpdates answered without a result list")
        return result

    def _parse(self, raw: Any) -> PlatformMessage | None:
        """One update as a message; None (after moving the offset past it) for anything we
        do not answer or cannot read."""
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if isinstance(update_id, int):
            self.offset = max(self.offset or 0, update_id + 1)
        try:
            update = telegram.Update.de_json(raw, self._bot())
            return None if update is None else self._message(update)
        except Exception as exc:  # PTB raises KeyError/TypeError/ValueError on bad shapes
            self.malformed += 1
            log.warning("malformed Telegram update", channel=self.name, error=type(exc).__name__)
            return None

    def _message(self, update: telegram.Update) -> PlatformMessage | None:
        message = update.message
        if message is None or message.from_user is None:
            return None
        text = message.text or message.caption
        if not text:
            return None  # stickers, joins, photos without a caption: nothing to answer
        bot = self._bot()
        group = message.chat.type != "private"
        replied = message.reply_to_message
        mentioned = (
            replied is not None and replied.from_user is not None and replied.from_user.id == bot.id
        )
        if bot.username and f"@{bot.username}".lower() in text.lower():
            mentioned = True
        return PlatformMessage(
            platform=self.name,
            platform_user=str(message.from_user.id),
            chat=str(message.chat.id),
            text=text,
            message_id=str(message.message_id),
            reply_to=str(replied.message_id) if replied is not None else None,
            sent_at=message.date.astimezone(UTC),
            user_name=message.from_user.full_name,
            group=group,
            mentioned=mentioned,
            attachments=_attachments(message),
            raw=update.to_dict(),
        )

    async def accept(self, headers: Mapping[str, str], body: bytes) -> Pushed:
        """Webhook mode: Telegram's request, authenticated by the secret token we set."""
        given = {k.lower(): v for k, v in headers.items()}.get(SECRET_HEADER, "")
        if self._secret is None or not hmac.compare_digest(given, self._secret):
            raise NotAuthenticated("the Telegram secret token is missing or wrong")
        try:
            raw = json.loads(body)
        except ValueError:
            raise InvalidInput("the update is not JSON") from None
        if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
            raise InvalidInput("the update has no update_id")
        if not self._ready:  # de_json needs the bot's identity; it comes with getMe
            raise PlatformUnavailable("the Telegram channel is not connected yet")
        message = self._parse(raw)
        return Pushed([] if message is None else [message])

    # --- outbound -----------------------------------------------------------------------------

    async def send(self, chat: str, text: str, *, reply_to: str | None = None) -> str:
        bot = self._connected_bot()
        reply = (
            telegram.ReplyParameters(int(reply_to), allow_sending_without_reply=True)
            if reply_to and reply_to.isdigit()
            else None
        )
        sent = await _call(bot.send_message(chat_id=chat, text=text, reply_parameters=reply))
        return str(sent.message_id)

    async def edit(self, chat: str, message_id: str, text: str) -> None:
        bot = self._connected_bot()
        try:
            await _call(bot.edit_message_text(text, chat_id=chat, message_id=int(message_id)))
        except PlatformRejected as exc:
            reason = exc.message.lower()
            if "not modified" in reason:
                return  # the same text again: nothing to do
            if "not found" in reason or "can't be edited" in reason:
                raise MessageGone(exc.message) from exc
            raise

    async def typing(self, chat: str) -> None:
        await _call(self._connected_bot().send_chat_action(chat_id=chat, action=ChatAction.TYPING))

    def _bot(self) -> telegram.Bot:
        if self.bot is None:
            raise PlatformUnavailable(f"channel {self.name} is not started")
        return self.bot

    def _connected_bot(self) -> telegram.Bot:
        if not self._ready:
            raise PlatformUnavailable("the Telegram channel is not connected yet")
        return self._bot()


async def _call(request: Any) -> Any:
    """Await a PTB call, its errors as ``PlatformError``."""
    try:
        return await request
    except tg_error.RetryAfter as exc:
        raise PlatformRateLimited("Telegram flood control", retry_after=_seconds(exc)) from exc
    except (tg_error.BadRequest, tg_error.Forbidden, tg_error.ChatMigrated) as exc:
        raise PlatformRejected(exc.message) from exc
    except (tg_error.TimedOut, tg_error.NetworkError, tg_error.Conflict) as exc:
        raise PlatformUnavailable(exc.message) from exc
    except tg_error.InvalidToken as exc:  # an operator must fix it; keep what waits
        raise PlatformUnavailable(f"Telegram refused the token: {exc.message}") from exc
    except tg_error.TelegramError as exc:
        raise PlatformError(exc.message) from exc


def _seconds(exc: tg_error.RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int form is going away
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value if isinstance(value, int | float) else value.total_seconds()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise PlatformUnavailable("Telegram answered something that is not JSON") from None
    return data if isinstance(data, dict) else {}


def _attachments(message: telegram.Message) -> tuple[Mapping[str, Any], ...]:
    found: list[Mapping[str, Any]] = []
    if message.document is not None:
        doc = message.document
        found.append(
            {
                "kind": "document",
                "id": doc.file_id,
                "name": doc.file_name,
                "size": doc.file_size,
                "mime_type": doc.mime_type,
            }
        )
    if message.photo:
        largest = message.photo[-1]
        found.append({"kind": "photo", "id": largest.file_id, "size": largest.file_size})
    if message.voice is not None:
        found.append({"kind": "voice", "id": message.voice.file_id})
    return tuple(found)
