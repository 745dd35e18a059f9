"""One WebSocket connection: handshake, requests, subscriptions, heartbeats, back-pressure.

Tasks per connection, under one TaskGroup: the reader (this coroutine), a writer while frames
wait in the outbox, one task per request being handled and one per subscribed conversation.
Heartbeats come from outside: the server's one heartbeat task calls ``beat`` on every
connection. An idle connection is the reader alone: every task it does not need costs memory
times ten thousand connections.
Any of them ends the connection by raising ``CloseConnection``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from personae.core.experiments.admin import ExperimentAdmin
from personae.core.hub import Accepted, ConversationHub
from personae.core.ports import Authenticator, RequestGate
from personae.core.types import Caller, InboundMessage, Redo
from personae.errors import IllegalTransition, PersonaeError, RateLimited
from personae.transports import ws_frames as frames
from personae.transports.auth import end_user
from personae.transports.request_context import new_trace_id
from personae.transports.ws_limits import Bucket, WsLimits
from personae.transports.ws_outbox import Outbox, OutboxFull
from personae.transports.ws_state import LEGAL_MOVES, CloseConnection, ConnectionState

log = structlog.get_logger(__name__)


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        hub: ConversationHub,
        authenticator: Authenticator,
        limits: WsLimits,
        gate: RequestGate | None = None,
        experiments: ExperimentAdmin | None = None,
    ) -> None:
        self.ws = websocket
        self.hub = hub
        self.authenticator = authenticator
        self.limits = limits
        self.gate = gate  # rate limits per key and user; None: none
        self.experiments = experiments  # feedback on replies; None: refused
        self.variant: str | None = None  # from the connect frame: a tester's colouring
        self.tags: tuple[str, ...] = ()
        self.caller: Caller | None = None  # known after the handshake
        self.state = ConnectionState.CONNECTING
        self.user = ""
        self.outbox = Outbox(limit=limits.outbox_frames)
        self._subscriptions: dict[str, asyncio.Task[None]] = {}
        self._pending = 0
        self._bucket = Bucket(limits.requests_per_s, limits.request_burst)
        self._refused_in_a_row = 0
        self._group: asyncio.TaskGroup | None = None
        self._writing = False  # a writer task is draining the outbox
        self._delta_pace: Bucket | None = None  # made at the first delta: idle ones never need it
        self._last_heard = time.monotonic()

    def _move(self, to: ConnectionState) -> None:
        if to is self.state:
            return
        if to not in LEGAL_MOVES[self.state]:
            raise IllegalTransition("websocket connection", self.state, to)
        self.state = to

    async def run(self) -> None:
        await self.ws.accept()
        try:
            closing = await self._serve()
        finally:
            if self.state is not ConnectionState.DRAINING:
                self._move(ConnectionState.CLOSED)
        if closing is not None:
            await self._close(*closing)

    async def _serve(self) -> tuple[int, str] | None:
        """Run the connection; the close code and reason to send, or None if the peer left."""
        closing: tuple[int, str] | None = None
        try:
            hello_id, params = await self._handshake()
            async with asyncio.TaskGroup() as group:
                self._group = group
                hello = await self._hello(hello_id, params)
                del params  # done with: a held connection keeps nothing of its connect frame
                self._put(frames.result_frame(hello_id, hello))
                await self._read()
                raise CloseConnection(1000, "bye")
        except* CloseConnection as group:
            first = group.exceptions[0]
            assert isinstance(first, CloseConnection)
            closing = (first.code, first.reason)
            self._move(ConnectionState.DRAINING)
        except* WebSocketDisconnect:
            pass
        return closing

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):  # the client may be gone already
            if code != 1013:  # answers already queued still go out, except to a slow reader
                await self._flush(deadline_s=1.0)
            await self.ws.close(code, reason)
        self._move(ConnectionState.CLOSED)

    async def _flush(self, *, deadline_s: float) -> None:
        async with asyncio.timeout(deadline_s):
            while len(self.outbox):
                await self._send_now(self.outbox.pop())

    # --- handshake ---------------------------------------------------------------------------

    async def _handshake(self) -> tuple[str, frames.ConnectParams]:
        text = await self._receive()
        try:
            request, params = frames.parse_request(text)
        except frames.FrameError as exc:
            reason = f"the first frame must be a connect request ({exc.code})"
            raise CloseConnection(1008, reason) from None
        if request.method != "connect":
            raise CloseConnection(1008, "the first frame must be a connect request")
        assert isinstance(params, frames.ConnectParams)
        version = min(params.protocol.max, frames.PROTOCOL_VERSION)
        if version < params.protocol.min or version not in frames.SUPPORTED:
            await self._send_now(
                frames.error_frame(
                    request.id,
                    "unsupported_protocol",
                    f"this server speaks protocol {frames.PROTOCOL_VERSION}",
                )
            )
            raise CloseConnection(1002, "unsupported protocol version")
        try:
            principal = await self.authenticator.authenticate(params.token)
            client = self.ws.client.host if self.ws.client else None
            # Whom the connection acts for: a user only itself, a service its tenant's users.
            self.caller = Caller(principal, end_user(principal, params.user), client)
            await self._admit()
        except RateLimited as exc:
            await self._send_now(
                frames.error_frame(
                    request.id, exc.code, exc.message, retryable=True, retry_after=exc.retry_after
                )
            )
            raise CloseConnection(1013, "rate limited") from None
        except PersonaeError as exc:
            await self._send_now(frames.error_frame(request.id, exc.code, exc.message))
            raise CloseConnection(1008, "not authenticated") from None
        self.user = self.caller.user
        self.variant = params.variant
        self.tags = tuple(dict.fromkeys(t for t in params.tags if t))
        # The connection's own log context; the tasks it starts from now on inherit it.
        structlog.contextvars.bind_contextvars(user=self.user)
        self._move(ConnectionState.ACTIVE)
        return request.id, params

    async def _hello(self, request_id: str, params: frames.ConnectParams) -> dict[str, Any]:
        resumed, refused = [], {}
        for conversation, after_seq in params.resume.items():
            try:
                await self._subscribe(conversation, max(after_seq, 0))
                resumed.append(conversation)
            except PersonaeError as exc:
                refused[conversation] = exc.code
        return {
            "type": "hello",
            "protocol": frames.PROTOCOL_VERSION,
            "user": self.user,
            "device_id": params.device_id,
            "limits": self.limits.describe(),
            "resumed": resumed,
            "resume_errors": refused,
        }

    # --- reading ------------------------------------------------------------------------------

    async def _receive(self) -> str:
        if self.state is ConnectionState.CONNECTING:
            try:
                async with asyncio.timeout(self.limits.idle_timeout_s):
                    message = await self.ws.receive()
            except TimeoutError:
                raise CloseConnection(1001, "no frame within the idle timeout") from None
        else:  # silence after the handshake is the shared heartbeat's business (``beat``)
            message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        self._last_heard = time.monotonic()
        if self.state is ConnectionState.IDLE:
            self._move(ConnectionState.ACTIVE)
        text = message.get("text")
        if text is None:
            raise CloseConnection(1003, "binary frames are not supported; send JSON text")
        if len(text.encode()) > self.limits.max_frame_bytes:
            raise CloseConnection(1009, f"frames are limited to {self.limits.max_frame_bytes} B")
        return str(text)

    async def _read(self) -> None:
        while True:
            text = await self._receive()
            wait = self._bucket.take()
            if wait is not None:
                self._refused_in_a_row += 1
                if self._refused_in_a_row > self.limits.request_burst:
                    raise CloseConnection(1008, "too many requests")
                self.hub.observer.request_rejected("rate_limited")
                self._answer_refusal(text, "rate_limited", "slow down", retry_after=wait)
                continue
            self._refused_in_a_row = 0
            if self._pending >= self.limits.max_pending_requests:
                self.hub.observer.request_rejected("too_many_pending")
                self._answer_refusal(text, "too_many_pending", "wait for answers", retry_after=1)
                continue
            try:
                request, params = frames.parse_request(text)
            except frames.FrameError as exc:
                self._put(frames.error_frame(exc.request_id, exc.code, exc.message))
                continue
            self._start_handling(request.id, request.method, params)

    def _answer_refusal(self, text: str, code: str, message: str, *, retry_after: float) -> None:
        try:
            request_id: str | None = json.loads(text).get("id")
        except (ValueError, AttributeError):
            request_id = None
        frame = frames.error_frame(
            request_id if isinstance(request_id, str) else None,
            code,
            message,
            retryable=True,
            retry_after=round(retry_after, 3),
        )
        self._put(frame)

    def _start_handling(self, request_id: str, method: str, params: Any) -> None:
        handlers: dict[str, Callable[[Any], Awaitable[dict[str, Any]]]] = {
            "message.send": lambda p: self._send_message(p, request_id),
            "message.regenerate": lambda p: self._redo(p, request_id, Redo.REGENERATE),
            "message.edit": lambda p: self._redo(p, request_id, Redo.EDIT),
            "message.swipe": self._swipe,
            "message.cancel": self._cancel,
            "conversation.subscribe": self._subscribe_request,
            "conversation.unsubscribe": self._unsubscribe,
            "ping": self._ping,
            "message.feedback": self._feedback,
        }
        handler = handlers.get(method)

        async def answer() -> None:
            # Its own task, so its own log context: every request gets a trace id, which
            # the turn it starts inherits.
            structlog.contextvars.bind_contextvars(trace_id=new_trace_id())
            self._pending += 1
            try:
                if handler is None:  # only "connect" is known and unhandled here
                    raise _RequestRefused("already_connected", "this connection is connected")
                result = await handler(params)
                if result is not _ANSWERED:
                    self._put(frames.result_frame(request_id, result))
            except _RequestRefused as exc:
                self._put(frames.error_frame(request_id, exc.code, exc.message))
            except PersonaeError as exc:
                self._put(
                    frames.error_frame(
                        request_id,
                        exc.code,
                        exc.message,
                        retryable=exc.retryable,
                        retry_after=getattr(exc, "retry_after", None),
                    )
                )
            except Exception:
                log.exception("request failed", method=method)
                self._put(frames.error_frame(request_id, "internal_error", "internal error"))
            finally:
                self._pending -= 1

        assert self._group is not None
        self._group.create_task(answer())

    # --- requests -----------------------------------------------------------------------------

    async def _send_message(self, params: frames.SendParams, request_id: str) -> dict[str, Any]:
        await self._admit()  # in this request's task: the turn it starts is audited as ours
        accepted = await self.hub.send(
            InboundMessage(
                user=self.user,
                character_id=params.character or "",  # "": the conversation's group
                text=params.text,
                conversation_id=params.conversation,
                new_conversation=params.new_conversation,
                channel="ws",
                idempotency_key=params.idempotency_key,
                speaker=params.speaker,
                greeting=params.greeting,
                role=self.caller.principal.role.value if self.caller else "user",
                tags=self.tags,
                forced_variant=self.variant,
            )
        )
        return await self._accepted(accepted, request_id)

    async def _redo(
        self, params: frames.RegenerateParams | frames.EditParams, request_id: str, redo: Redo
    ) -> dict[str, Any]:
        await self._admit()
        accepted = await self.hub.redo(
            InboundMessage(
                user=self.user,
                character_id="",  # the conversation's
                text=params.text if isinstance(params, frames.EditParams) else "",
                conversation_id=params.conversation,
                channel="ws",
                idempotency_key=params.idempotency_key,
                redo=redo,
                redo_of=params.message,
                role=self.caller.principal.role.value if self.caller else "user",
                tags=self.tags,
                forced_variant=self.variant,
            )
        )
        return await self._accepted(accepted, request_id)

    async def _swipe(self, params: frames.SwipeParams) -> dict[str, Any]:
        await self._admit()
        chosen = await self.hub.choose_swipe(self.user, params.conversation, params.message)
        return {"conversation": params.conversation, "message_id": chosen.id}

    async def _accepted(self, accepted: Accepted, request_id: str) -> dict[str, Any]:
        result = {
            "conversation": accepted.conversation_id,
            "message_id": accepted.message_id,
            "message_seq": accepted.message_seq,
            "ack_seq": accepted.ack_seq,
            "duplicate": accepted.duplicate,
        }
        # Subscribing after the answer puts the answer before the turn's events. A connection
        # that follows the conversation already gets them as every device does, and a short
        # reply may come whole before this answer: clients keep events for a reply_to they do
        # not know yet (docs/protocol.md, "Example").
        self._put(frames.result_frame(request_id, result))
        if accepted.ack_seq is not None and accepted.conversation_id not in self._subscriptions:
            await self._subscribe(accepted.conversation_id, accepted.ack_seq - 1)
        return _ANSWERED

    async def _cancel(self, params: frames.ConversationParams) -> dict[str, Any]:
        return {"cancelled": self.hub.cancel(params.conversation, self.user)}

    async def _subscribe_request(self, params: frames.SubscribeParams) -> dict[str, Any]:
        await self._admit()
        # The hub's watch refuses a conversation this connection's user does not own.
        await self._subscribe(params.conversation, params.after_seq)
        return {"conversation": params.conversation, "after_seq": params.after_seq}

    async def _unsubscribe(self, params: frames.ConversationParams) -> dict[str, Any]:
        task = self._subscriptions.pop(params.conversation, None)
        if task is not None:
            task.cancel()
        return {"conversation": params.conversation, "subscribed": False}

    async def _feedback(self, params: frames.FeedbackParams) -> dict[str, Any]:
        if self.experiments is None:
            raise _RequestRefused("not_available", "feedback is not available on this server")
        await self._admit()
        value = 1 if params.value == "up" else -1
        await self.experiments.feedback(params.message_id, self.user, value)
        return {"message_id": params.message_id, "value": params.value}

    async def _ping(self, params: frames.EmptyParams) -> dict[str, Any]:
        return {"pong": time.time()}

    async def _admit(self) -> None:
        """Count a request against the caller's rate limits (``RateLimited``)."""
        if self.gate is not None and self.caller is not None:
            await self.gate.admit(self.caller)

    # --- subscriptions, writing, heartbeats ---------------------------------------------------

    async def _subscribe(self, conversation: str, after_seq: int) -> None:
        if conversation in self._subscriptions:
            return
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        assert self._group is not None
        task = self._group.create_task(self._forward(conversation, after_seq, started))
        self._subscriptions[conversation] = task
        try:
            await started
        except BaseException:
            self._subscriptions.pop(conversation, None)
            raise

    async def _forward(
        self, conversation: str, after_seq: int, started: asyncio.Future[None]
    ) -> None:
        try:
            async with self.hub.watch(conversation, self.user, after_seq=after_seq) as events:
                started.set_result(None)
                async for event in events:
                    self._put(
                        frames.event_frame(
                            event.event, event.payload, conversation=conversation, seq=event.seq
                        )
                    )
        except PersonaeError as exc:
            if not started.done():
                started.set_exception(exc)
                return
            log.warning("subscription failed", conversation=conversation, code=exc.code)
            raise CloseConnection(1011, "the server could not continue this stream") from None

    def _put(self, frame: dict[str, Any]) -> None:
        try:
            self.outbox.put(frame)
        except OutboxFull:
            raise CloseConnection(1013, "slow consumer: too many frames waiting") from None
        if not self._writing and self._group is not None:
            self._writing = True
            writer = self._write()
            try:
                self._group.create_task(writer)
            except RuntimeError:  # the group is ending: so is the connection (``_close`` flushes)
                writer.close()  # never started: closed, not left for the collector to warn of
                self._writing = False

    async def _write(self) -> None:
        """Send what waits in the outbox, then end; the next ``_put`` starts a new writer."""
        try:
            while len(self.outbox):
                frame = self.outbox.pop()
                if frame.get("event") == "message.delta":
                    frame = await self._coalesce(frame)
                await self._send_now(frame)
        finally:
            self._writing = False

    async def _coalesce(self, frame: dict[str, Any]) -> dict[str, Any]:
        # Delta frames are paced by a token bucket: one frame per coalescing window on average,
        # with a burst of a few. A reply at about one token per window (50 tokens/s) then goes
        # out token by token as it comes, jitter and all, while a faster one is held to one
        # frame per window, each carrying what queued up meanwhile. Fixed window slots made
        # every such token wait for the next slot (10 ms on average); a window counted from
        # the last send made every token wait as long as the latest one had.
        pace = self._delta_pace
        if pace is None:
            pace = self._delta_pace = Bucket(1 / self.limits.coalesce_s, self.limits.delta_burst)
        wait = pace.reserve()
        if wait:
            await asyncio.sleep(wait)
        return self.outbox.take_deltas_after(frame)

    async def _send_now(self, frame: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(self.limits.send_timeout_s):
                await self.ws.send_text(json.dumps(frame, separators=(",", ":")))
        except TimeoutError:
            raise CloseConnection(1013, "slow consumer: a send did not complete") from None

    def beat(self, now: float) -> None:
        """Called by the server's one heartbeat task for every connection, every interval
        (one task for all connections instead of one each): ping, mark quiet connections idle,
        close silent ones."""
        if self.state not in {ConnectionState.ACTIVE, ConnectionState.IDLE}:
            return
        quiet = now - self._last_heard
        try:
            if quiet >= self.limits.idle_timeout_s:
                raise CloseConnection(1001, "no frame within the idle timeout")
            if self.state is ConnectionState.ACTIVE and quiet >= self.limits.heartbeat_interval_s:
                self._move(ConnectionState.IDLE)
            self._put(frames.event_frame("ping", {"ts": time.time()}))
        except CloseConnection as close:
            self._close_soon(close)

    def _close_soon(self, close: CloseConnection) -> None:
        async def end() -> None:
            raise close

        if self._group is not None:
            self._group.create_task(end())


_ANSWERED: dict[str, Any] = {}  # a handler that put its own answer in the outbox returns this


class _RequestRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
