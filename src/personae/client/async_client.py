"""``PersonaeClient``: connect, send, stream a reply as an async iterator, cancel, and survive
dropped connections by reconnecting and resuming every conversation from its last seq.

    async with PersonaeClient("http://127.0.0.1:8000", user="sam") as client:
        reply = await client.send("aria", "Where to?")
        async for text in reply:
            print(text, end="")
        print((await reply.done())["message"]["content"])

Sends carry an idempotency key, so a send that was in flight when the connection dropped is
sent again after reconnecting without making a second turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

PROTOCOL = {"min": 1, "max": 1}
_END = object()


class ClientError(Exception):
    """An error answer from the server (``code``, ``retry_after``) or a connection failure."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after


#: The events that end a reply.
_ENDS = frozenset({"message.done", "error"})


class Reply:
    """A reply being generated: iterate for text chunks; ``done()`` for the final payload."""

    def __init__(self, conversation: str, message_id: str, client: PersonaeClient) -> None:
        self.conversation = conversation
        self.message_id = message_id
        self._client = client
        self._chunks: asyncio.Queue[object] = asyncio.Queue()
        self._done: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def _event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "message.delta":
            self._chunks.put_nowait(payload["text"])
        elif event in _ENDS:
            if event == "message.done":
                self._done.set_result(payload)
            else:
                self._done.set_exception(ClientError(payload["code"], payload["message"]))
            self._chunks.put_nowait(_END)

    async def __aiter__(self) -> AsyncIterator[str]:
        while (chunk := await self._chunks.get()) is not _END:
            assert isinstance(chunk, str)
            yield chunk

    async def done(self) -> dict[str, Any]:
        return await self._done

    async def text(self) -> str:
        return "".join([chunk async for chunk in self])

    async def cancel(self) -> bool:
        result = await self._client.request("message.cancel", {"conversation": self.conversation})
        return bool(result["cancelled"])


class PersonaeClient:
    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        token: str | None = None,
        device_id: str | None = None,
        reconnect: bool = True,
        max_backoff_s: float = 10.0,
    ) -> None:
        base = url.rstrip("/")
        self.ws_url = base.replace("http", "ws", 1) + "/ws" if base.startswith("http") else base
        self.user = user
        self.token = token
        self.device_id = device_id or f"py-{uuid.uuid4().hex[:8]}"
        self.reconnect = reconnect
        self.max_backoff_s = max_backoff_s
        self.hello: dict[str, Any] = {}
        self._socket: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[dict[str, Any], asyncio.Future[dict[str, Any]]]] = {}
        self._last_seq: dict[str, int] = {}  # per conversation: the last seq delivered
        self._replies: dict[str, Reply] = {}  # by the user message id they answer
        # Events of replies not known yet (their send's answer is still on its way).
        self._early: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._connected = asyncio.Event()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        await self._open()
        self._reader = asyncio.create_task(self._read_forever())

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._socket is not None:
            await self._socket.close()
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(ClientError("closed", "the client was closed"))

    async def send(
        self,
        character: str,
        text: str,
        *,
        conversation: str | None = None,
        new_conversation: bool = False,
        idempotency_key: str | None = None,
    ) -> Reply:
        params: dict[str, Any] = {
            "character": character,
            "text": text,
            "idempotency_key": idempotency_key or uuid.uuid4().hex,
        }
        if conversation:
            params["conversation"] = conversation
        if new_conversation:
            params["new_conversation"] = True
        result = await self.request("message.send", params)
        reply = Reply(result["conversation"], result["message_id"], self)
        if result["duplicate"]:
            # The server had this message already and started no new turn: nothing will
            # stream for it here (its events are in the conversation's log).
            reply._event("message.done", {"duplicate": True, "reply_to": reply.message_id})
            return reply
        self._replies[reply.message_id] = reply
        for event, payload in self._early.pop(reply.message_id, []):
            self._deliver(reply, event, payload)
        if not self._sending():  # what was kept meanwhile of other devices' replies that ended
            for ended in [k for k, events in self._early.items() if events[-1][0] in _ENDS]:
                del self._early[ended]
        return reply

    def _sending(self) -> bool:
        """Whether a send's answer is on its way: in a conversation this connection follows
        already, the server may deliver a whole short reply before it, and the reply's end
        must then be kept for it like its other events."""
        return any(frame["method"] == "message.send" for frame, _ in self._pending.values())

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        request_id = f"c{next(self._ids)}"
        frame = {"type": "req", "id": request_id, "method": method, "params": params or {}}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (frame, future)
        with contextlib.suppress(ConnectionClosed):  # resent after the reconnect
            await self._write(frame)
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)

    # --- the connection ------------------------------------------------------------------------

    async def _open(self) -> None:
        try:
            self._socket = await connect(self.ws_url, max_size=None)
        except (OSError, InvalidHandshake) as exc:
            raise ClientError("unreachable", f"cannot connect to {self.ws_url}: {exc}") from exc
        params: dict[str, Any] = {"protocol": PROTOCOL, "device_id": self.device_id}
        if self.user:
            params["user"] = self.user
        if self.token:
            params["token"] = self.token
        if self._last_seq:
            params["resume"] = dict(self._last_seq)
        await self._socket.send(
            json.dumps({"type": "req", "id": "hello", "method": "connect", "params": params})
        )
        answer = json.loads(await self._socket.recv())
        if not answer.get("ok"):
            error = answer.get("error", {})
            raise ClientError(error.get("code", "refused"), error.get("message", "refused"))
        self.hello = answer["result"]
        self._connected.set()

    async def _write(self, frame: dict[str, Any]) -> None:
        await self._connected.wait()
        assert self._socket is not None
        await self._socket.send(json.dumps(frame))

    async def _read_forever(self) -> None:
        backoff = 0.2
        while True:
            try:
                assert self._socket is not None
                async for raw in self._socket:
                    self._dispatch(json.loads(raw))
                    backoff = 0.2
            except ConnectionClosed:
                pass
            if self._closing or not self.reconnect:
                self._fail_pending(ClientError("disconnected", "the connection closed"))
                return
            self._connected.clear()
            while True:  # reconnect with exponential backoff, then resend what was pending
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                try:
                    await self._open()
                    break
                except ClientError:
                    continue
            for frame, _ in list(self._pending.values()):
                with contextlib.suppress(ConnectionClosed):
                    await self._write(frame)

    def _dispatch(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "res":
            found = self._pending.get(frame.get("id", ""))
            if found is None or found[1].done():
                return
            if frame.get("ok"):
                found[1].set_result(frame["result"])
            else:
                error = frame.get("error", {})
                found[1].set_exception(
                    ClientError(
                        error.get("code", "error"),
                        error.get("message", ""),
                        retry_after=error.get("retry_after"),
                    )
                )
            return
        conversation, seq = frame.get("conversation"), frame.get("seq")
        if frame.get("type") != "event" or conversation is None or seq is None:
            return  # pings and connection-level errors
        if seq <= self._last_seq.get(conversation, 0):
            return  # already delivered before a reconnect
        self._last_seq[conversation] = seq
        payload = frame.get("payload", {})
        reply_to = payload.get("reply_to")
        if reply_to is None:
            return
        reply = self._replies.get(reply_to)
        if reply is not None:
            self._deliver(reply, frame["event"], payload)
        elif frame["event"] in _ENDS and not self._sending():
            self._early.pop(reply_to, None)  # someone else's reply (another device) ended
        elif len(self._early) < 1000:
            self._early.setdefault(reply_to, []).append((frame["event"], payload))

    def _deliver(self, reply: Reply, event: str, payload: dict[str, Any]) -> None:
        reply._event(event, payload)
        if event in _ENDS:
            self._replies.pop(reply.message_id, None)

    def _fail_pending(self, error: ClientError) -> None:
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        for reply in self._replies.values():
            reply._event("error", {"code": error.code, "message": error.message})
        self._replies.clear()
