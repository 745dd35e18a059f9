"""The generic signed webhook: any service POSTs messages in, replies are POSTed out.

Inbound: ``POST /channels/<name>`` with a JSON body ``{"user", "text", "chat"?, "id"?,
"reply_to"?, "user_name"?, "group"?, "mentioned"?, "attachments"?}`` signed as
``signing`` describes. Outbound: ``POST <options.url>`` with ``{"channel", "chat", "id",
"text", "reply_to"}``, signed the same way; 2xx is delivered, 429 waits ``Retry-After``,
5xx and network errors are retried from the outbox, other 4xx are given up.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from personae.channels.errors import PlatformRateLimited, PlatformRejected, PlatformUnavailable
from personae.channels.signing import SignatureCheck, signed_headers
from personae.channels.ssrf import check_target
from personae.core.channels import PlatformMessage, PushChannel, Pushed, Receive
from personae.core.ports import Channel
from personae.errors import ConfigurationError, InvalidInput
from personae.plugins.specs import ChannelConfig

_TEXT_FIELDS = ("user", "text")
_OPTIONAL_TEXT = ("chat", "id", "reply_to", "user_name")


class WebhookChannel(Channel, PushChannel):
    edits = False

    def __init__(
        self,
        name: str,
        *,
        secret: str,
        url: str | None = None,
        allow_private_targets: bool = False,
        window_s: float = 300.0,
        timeout_s: float = 10.0,
        max_chars: int = 16_000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not secret:
            raise ConfigurationError(f"channel {name}: a webhook needs a secret (secret_env)")
        self.name = name
        self.max_chars = max_chars
        self.url = url
        self.allow_private = allow_private_targets
        self._secret = secret
        self._check = SignatureCheck(secret, window_s=window_s)
        self._timeout_s = timeout_s
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_config(cls, config: ChannelConfig) -> WebhookChannel:
        options = dict(config.options)
        unknown = set(options) - {
            "url",
            "allow_private_targets",
            "window_s",
            "timeout_s",
            "max_chars",
        }
        if unknown:
            raise ConfigurationError(f"channel {config.name}: unknown options {sorted(unknown)}")
        return cls(config.name, secret=config.secret or "", **options)

    async def start(self) -> None:
        if self.url is not None:
            try:
                await check_target(self.url, allow_private=self.allow_private)
            except PlatformRejected as exc:
                raise ConfigurationError(f"channel {self.name}: {exc.message}") from exc
            except PlatformUnavailable:
                pass  # DNS may come back; each send checks again
        self._client = httpx.AsyncClient(
            timeout=self._timeout_s, follow_redirects=False, transport=self._transport
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def listen(self, receive: Receive, connected: Callable[[], None]) -> None:
        connected()  # updates arrive through ``accept``; there is no connection to keep
        await asyncio.Event().wait()

    async def accept(self, headers: Mapping[str, str], body: bytes) -> Pushed:
        self._check.verify(headers, body)
        try:
            data = json.loads(body)
        except ValueError:
            raise InvalidInput("the body is not JSON") from None
        return Pushed([self._message(data)])

    def _message(self, data: Any) -> PlatformMessage:
        if not isinstance(data, dict):
            raise InvalidInput("the body must be a JSON object")
        for key in _TEXT_FIELDS:
            if not isinstance(data.get(key), str) or not data[key].strip():
                raise InvalidInput(f"{key!r} must be a non-empty string")
        for key in _OPTIONAL_TEXT:
            if data.get(key) is not None and not isinstance(data[key], str):
                raise InvalidInput(f"{key!r} must be a string")
        attachments = data.get("attachments") or []
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise InvalidInput("'attachments' must be a list of objects")
        return PlatformMessage(
            platform=self.name,
            platform_user=data["user"],
            chat=data.get("chat") or data["user"],
            text=data["text"],
            message_id=data.get("id"),
            reply_to=data.get("reply_to"),
            user_name=data.get("user_name"),
            group=bool(data.get("group", False)),
            mentioned=bool(data.get("mentioned", False)),
            attachments=tuple(attachments),
            raw=data,
        )

    async def send(self, chat: str, text: str, *, reply_to: str | None = None) -> str:
        if self.url is None or self._client is None:
            raise PlatformRejected(f"channel {self.name} has no outbound url")
        await check_target(self.url, allow_private=self.allow_private)
        message_id = uuid.uuid4().hex
        body = json.dumps(
            {
                "channel": self.name,
                "chat": chat,
                "id": message_id,
                "text": text,
                "reply_to": reply_to,
            },
            ensure_ascii=False,
        ).encode()
        headers = {"Content-Type": "application/json", **signed_headers(self._secret, body)}
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise PlatformUnavailable(f"webhook request failed: {type(exc).__name__}") from exc
        raise_for_status(response)
        return message_id


def raise_for_status(response: httpx.Response) -> None:
    """A platform's HTTP answer as a ``PlatformError``, or nothing for 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429:
        raise PlatformRateLimited("rate limited", retry_after=_retry_after(response))
    if status >= 500 or status == 408:
        raise PlatformUnavailable(f"the platform answered {status}")
    raise PlatformRejected(f"the platform refused the request ({status})", status=status)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0
