"""Slack, with slack-bolt: the Events API over HTTP (signature checked by bolt) or Socket
Mode, messages in channels and DMs, replies streamed by editing the message (``chat.update``,
at most one edit per 1.5 s: Slack's Tier 3 allows about 50 a minute).

Bolt verifies and dispatches; its ``message`` listener turns each event into a
``PlatformMessage``. Socket Mode is read here with ``websockets``: ``apps.connections.open``
gives the URL, every envelope is acknowledged, events go through the same bolt app, and a
closed socket or a ``disconnect`` request ends ``listen`` so the runner reconnects.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog
import websockets
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from personae.channels.errors import (
    MessageGone,
    PlatformError,
    PlatformRateLimited,
    PlatformRejected,
    PlatformUnavailable,
)
from personae.core.channels import PlatformMessage, PushChannel, Pushed, Receive
from personae.core.ports import Channel
from personae.errors import ConfigurationError, InvalidInput, NotAuthenticated
from personae.plugins.specs import ChannelConfig

log = structlog.get_logger(__name__)

_OPTIONS = {"mode", "base_url", "app_token_env", "timeout_s", "max_chars"}
_COLLECT = "personae_messages"  # where the bolt listener leaves what a request held
_GONE = {"message_not_found", "cant_update_message", "edit_window_closed"}
_MENTION = re.compile(r"<@([A-Z0-9]+)>")


class SlackChannel(Channel, PushChannel):
    edits = True
    min_edit_interval_s = 1.5

    def __init__(
        self,
        name: str,
        *,
        token: str,
        signing_secret: str | None = None,
        app_token: str | None = None,
        mode: str = "events",
        base_url: str = "https://slack.com/api/",
        timeout_s: float = 10.0,
        max_chars: int = 4000,
    ) -> None:
        if not token:
            raise ConfigurationError(f"channel {name}: Slack needs a bot token (token_env)")
        if mode == "events" and not signing_secret:
            raise ConfigurationError(f"channel {name}: the Events API needs a signing secret")
        if mode == "socket" and not app_token:
            raise ConfigurationError(f"channel {name}: Socket Mode needs an app-level token")
        if mode not in ("events", "socket"):
            raise ConfigurationError(f"channel {name}: mode must be events or socket")
        self.name = name
        self.mode = mode
        self.max_chars = max_chars
        self._token = token
        self._signing_secret = signing_secret
        self._app_token = app_token
        self.base_url = base_url if base_url.endswith("/") else f"{base_url}/"
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.client: AsyncWebClient | None = None
        self.app: AsyncApp | None = None
        self.bot_user: str | None = None  # our user id, from auth.test: mentions name it

    @classmethod
    def from_config(cls, config: ChannelConfig) -> SlackChannel:
        options = dict(config.options)
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigurationError(f"channel {config.name}: unknown options {sorted(unknown)}")
        app_token_env = options.pop("app_token_env", None)
        app_token = os.environ.get(app_token_env) if app_token_env else None
        if app_token_env and not app_token:
            raise ConfigurationError(
                f"channel {config.name}: app_token_env names {app_token_env}, which is not set"
            )
        return cls(
            config.name,
            token=config.token or "",
            signing_secret=config.secret,
            app_token=app_token,
            **options,
        )

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self.client = AsyncWebClient(
            token=self._token,
            base_url=self.base_url,
            timeout=int(self.timeout_s),
            session=self._session,
            retry_handlers=[],  # the outbox retries, knowing what is worth it
        )
        app = AsyncApp(
            client=self.client,
            token=self._token,
            signing_secret=self._signing_secret or "unused-in-socket-mode",
            process_before_response=True,  # our listener only collects: it is quick
        )
        app.event("message")(self._on_message)
        self.app = app

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    # --- inbound ------------------------------------------------------------------------------

    async def listen(self, receive: Receive, connected: Callable[[], None]) -> None:
        client = self._client()
        identity = await _call(client.auth_test())
        self.bot_user = str(identity.get("user_id") or "") or None
        if self.mode == "events":
            connected()
            await asyncio.Event().wait()
        opened = await _call(client.apps_connections_open(app_token=self._app_token or ""))
        try:
            async with websockets.connect(str(opened["url"]), open_timeout=self.timeout_s) as ws:
                async for raw in ws:
                    if not await self._envelope(ws, raw, receive, connected):
                        break
        except (OSError, websockets.WebSocketException) as exc:
            raise PlatformUnavailable(f"Socket Mode connection lost: {exc}") from exc
        raise PlatformUnavailable("Slack closed the Socket Mode connection")

    async def _envelope(
        self, ws: Any, raw: str | bytes, receive: Receive, connected: Callable[[], None]
    ) -> bool:
        """Handle one Socket Mode frame; False when Slack asks us to reconnect."""
        try:
            envelope = json.loads(raw)
        except ValueError:
            log.warning("malformed Socket Mode frame", channel=self.name)
            return True
        if not isinstance(envelope, dict):
            return True
        kind = envelope.get("type")
        if kind == "hello":
            connected()
        elif kind == "disconnect":
            return False
        if "envelope_id" in envelope:
            await ws.send(json.dumps({"envelope_id": envelope["envelope_id"]}))
        payload = envelope.get("payload")
        if kind == "events_api" and isinstance(payload, dict):
            for message in await self._dispatch(AsyncBoltRequest(body=payload, mode="socket_mode")):
                await receive(message)
        return True

    async def accept(self, headers: Mapping[str, str], body: bytes) -> Pushed:
        if self.mode != "events":
            raise InvalidInput(f"channel {self.name} uses Socket Mode, not HTTP events")
        try:
            text = body.decode("utf-8")
            json.loads(text)
        except (UnicodeDecodeError, ValueError):
            raise InvalidInput("the event is not JSON") from None
        collected: list[PlatformMessage] = []
        request = AsyncBoltRequest(body=text, headers=dict(headers), context={_COLLECT: collected})
        response = await self._app().async_dispatch(request)
        if response.status == 401:
            raise NotAuthenticated("the Slack signature is missing, wrong or too old")
        if response.status >= 400 and response.status != 404:
            raise InvalidInput(f"Slack event refused ({response.status}): {response.body}")
        answer: dict[str, Any] | None = None
        if response.body and response.body.lstrip().startswith("{"):
            answer = json.loads(response.body)  # the URL verification challenge
        elif response.body:
            answer = {"challenge": response.body}
        return Pushed(collected, answer)

    async def _dispatch(self, request: AsyncBoltRequest) -> list[PlatformMessage]:
        collected: list[PlatformMessage] = []
        request.context[_COLLECT] = collected
        await self._app().async_dispatch(request)
        return collected

    async def _on_message(self, event: dict[str, Any], context: Any, body: dict[str, Any]) -> None:
        message = self._message(event, body)
        if message is not None:
            context[_COLLECT].append(message)

    def _message(self, event: dict[str, Any], body: dict[str, Any]) -> PlatformMessage | None:
        if event.get("subtype") not in (None, "file_share") or event.get("bot_id"):
            return None  # edits, joins, other bots (and ourselves)
        if not all(
            isinstance(event.get(k), str) and event[k] for k in ("text", "user", "channel", "ts")
        ):
            log.warning("malformed Slack message event", channel=self.name)
            return None
        text, user, chat, ts = (str(event[k]) for k in ("text", "user", "channel", "ts"))
        mentioned = self.bot_user is not None and f"<@{self.bot_user}>" in text
        clean = _MENTION.sub(lambda m: "" if m[1] == self.bot_user else m[0], text).strip()
        if not clean:
            return None
        files = event.get("files") or []
        return PlatformMessage(
            platform=self.name,
            platform_user=str(user),
            chat=str(chat),
            text=clean,
            message_id=ts,
            reply_to=event.get("thread_ts") if event.get("thread_ts") != ts else None,
            sent_at=_time(ts),
            group=event.get("channel_type") != "im",
            mentioned=mentioned,
            attachments=tuple(
                {"kind": "file", "id": f.get("id"), "name": f.get("name"), "size": f.get("size")}
                for f in files
                if isinstance(f, dict)
            ),
            raw=body,
        )

    # --- outbound -----------------------------------------------------------------------------

    async def send(self, chat: str, text: str, *, reply_to: str | None = None) -> str:
        sent = await _call(self._client().chat_postMessage(channel=chat, text=text))
        return str(sent["ts"])

    async def edit(self, chat: str, message_id: str, text: str) -> None:
        try:
            await _call(self._client().chat_update(channel=chat, ts=message_id, text=text))
        except PlatformRejected as exc:
            if exc.context.get("error") in _GONE:
                raise MessageGone(exc.message) from exc
            raise

    def _client(self) -> AsyncWebClient:
        if self.client is None:
            raise PlatformUnavailable(f"channel {self.name} is not started")
        return self.client

    def _app(self) -> AsyncApp:
        if self.app is None:
            raise PlatformUnavailable(f"channel {self.name} is not started")
        return self.app


async def _call(request: Any) -> Any:
    """Await a slack_sdk call, its errors as ``PlatformError``."""
    try:
        return await request
    except SlackApiError as exc:
        status = exc.response.status_code
        error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
        if status == 429:
            retry_after = float(exc.response.headers.get("Retry-After", "1"))
            raise PlatformRateLimited("Slack rate limit", retry_after=retry_after) from exc
        if status >= 500:
            raise PlatformUnavailable(f"Slack answered {status}") from exc
        raise PlatformRejected(f"Slack refused the request: {error}", error=error) from exc
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        raise PlatformUnavailable(f"Slack request failed: {type(exc).__name__}") from exc
    except PlatformError:
        raise


def _time(ts: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except ValueError:
        return None
