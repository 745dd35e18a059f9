"""MQTT for devices (voice assistants and the like), with aiomqtt.

A device publishes to ``<prefix>/in/<device>`` and receives on ``<prefix>/out/<device>``, both
QoS 1. A message is JSON ``{"text", "id"?, "user"?}`` or plain UTF-8 text; the reply is JSON
``{"id", "text", "reply_to"}``, final only (devices speak whole replies). The session is
persistent (``clean_session`` off, a fixed client id), so the broker keeps what devices
publish while Personae is away.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import aiomqtt
import structlog

from personae.channels.errors import MalformedUpdate, PlatformRejected, PlatformUnavailable
from personae.core.channels import PlatformMessage, Receive
from personae.core.ports import Channel
from personae.errors import ConfigurationError
from personae.plugins.specs import ChannelConfig

log = structlog.get_logger(__name__)

_OPTIONS = {
    "host",
    "port",
    "prefix",
    "username",
    "client_id",
    "keepalive",
    "timeout_s",
    "max_chars",
}


class MqttChannel(Channel):
    edits = False

    def __init__(
        self,
        name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        prefix: str = "personae",
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        keepalive: int = 30,
        timeout_s: float = 10.0,
        max_chars: int = 4000,
    ) -> None:
        if any(c in prefix for c in "+#") or not prefix.strip("/"):
            raise ConfigurationError(f"channel {name}: bad topic prefix {prefix!r}")
        self.name = name
        self.max_chars = max_chars
        self.host, self.port = host, port
        self.prefix = prefix.strip("/")
        self._username, self._password = username, password
        self.client_id = client_id or f"personae-{name}"
        self.keepalive = keepalive
        self.timeout_s = timeout_s
        self._client: aiomqtt.Client | None = None
        self.malformed = 0  # inbound messages skipped, for tests and health

    @classmethod
    def from_config(cls, config: ChannelConfig) -> MqttChannel:
        unknown = set(config.options) - _OPTIONS
        if unknown:
            raise ConfigurationError(f"channel {config.name}: unknown options {sorted(unknown)}")
        return cls(config.name, password=config.secret, **config.options)

    async def listen(self, receive: Receive, connected: Callable[[], None]) -> None:
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            clean_session=False,
            keepalive=self.keepalive,
            timeout=self.timeout_s,
        )
        try:
            async with client:
                await client.subscribe(f"{self.prefix}/in/+", qos=1)
                self._client = client
                connected()
                async for message in client.messages:
                    try:
                        inbound = self._message(message)
                    except MalformedUpdate as exc:
                        self.malformed += 1
                        log.warning("malformed MQTT message", channel=self.name, error=exc.message)
                        continue
                    await receive(inbound)
        except aiomqtt.MqttError as exc:
            raise PlatformUnavailable(f"MQTT connection lost: {exc}") from exc
        finally:
            self._client = None

    def _message(self, message: aiomqtt.Message) -> PlatformMessage:
        device = message.topic.value.rsplit("/", 1)[-1]
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            raise MalformedUpdate("the payload is not bytes")
        try:
            body = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedUpdate("the payload is not UTF-8") from None
        data: Any = {"text": body}
        if body.lstrip().startswith("{"):
            try:
                data = json.loads(body)
            except ValueError:
                raise MalformedUpdate("the payload is not valid JSON") from None
        text, message_id = data.get("text"), data.get("id")
        if not isinstance(text, str) or not text.strip():
            raise MalformedUpdate("the message has no text")
        if message_id is not None and not isinstance(message_id, str):
            raise MalformedUpdate("'id' must be a string")
        user = data.get("user")
        return PlatformMessage(
            platform=self.name,
            platform_user=user if isinstance(user, str) and user else device,
            chat=device,
            text=text,
            message_id=message_id,
            raw=data,
        )

    async def send(self, chat: str, text: str, *, reply_to: str | None = None) -> str:
        client = self._client
        if client is None:
            raise PlatformUnavailable("not connected to the MQTT broker")
        if any(c in chat for c in "+#/"):
            raise PlatformRejected(f"bad device id {chat!r}")
        message_id = uuid.uuid4().hex
        body = json.dumps({"id": message_id, "text": text, "reply_to": reply_to})
        try:
            await client.publish(f"{self.prefix}/out/{chat}", body, qos=1, timeout=self.timeout_s)
        except (TimeoutError, aiomqtt.MqttError) as exc:
            raise PlatformUnavailable(f"MQTT publish failed: {exc}") from exc
        return message_id
