"""An EventBus on Redis Streams: one capped stream per conversation, read by every process
that has a subscriber for it.

    publish     XADD <prefix>:events:<conversation> MAXLEN ~ maxlen  {"e": [event, ...] as JSON}
    subscribe   remembers the stream's last id at entry: everything added later is delivered
    reader      one task per bus: XREAD BLOCK over every subscribed stream at once, plus a
                wake-up stream of its own, so a new subscription joins the read at once
    recent      XREVRANGE back to a seq: the deltas of a reply running on another node, for a
                device that resumes here

Deltas are batched: those published within ``delta_batch_s`` of the first go out as one
entry (one XADD, not one per token); any other event first sends the deltas waiting before
it, in the same entry, so order is kept. One blocking connection per process, however many
conversations it watches. A stream keeps its last ``maxlen`` entries (approximately).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from personae.coordination.local import LocalConversationLock
from personae.core.events import DELTA, ConversationEvent
from personae.core.ports import EventBus
from personae.errors import CoordinationError

log = structlog.get_logger(__name__)

StreamId = tuple[int, int]

_PAGE = 100  # entries read per XREVRANGE by ``recent``


def parse_id(raw: str | bytes) -> StreamId:
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


@dataclass(eq=False, slots=True)
class _Subscription:
    after: StreamId  # the stream's last id when it subscribed: it gets what comes later
    queue: asyncio.Queue[ConversationEvent] = field(default_factory=asyncio.Queue)


class RedisEventBus(EventBus):
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "personae",
        maxlen: int = 1000,
        block_ms: int = 2000,  # below the client's socket timeout, which must not cut a read
        retry_s: float = 0.5,
        delta_batch_s: float = 0.005,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._maxlen = maxlen
        self._block_ms = block_ms
        self._retry_s = retry_s
        self._delta_batch_s = delta_batch_s
        self._waiting: dict[str, list[ConversationEvent]] = {}  # stream key -> unsent deltas
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._sending = LocalConversationLock()  # one XADD at a time per stream: order
        self._wake = f"{prefix}:bus:{uuid.uuid4().hex}"  # this process's wake-up stream
        self._subs: dict[str, set[_Subscription]] = {}  # stream key -> its subscriptions
        self._cursors: dict[str, StreamId] = {}  # stream key -> the last id read
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    def stream(self, conversation_id: str) -> str:
        return f"{self._prefix}:events:{conversation_id}"

    async def open(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_forever(), name="redis-event-bus")

    async def close(self) -> None:
        # redis-py may retry a blocking read it was cancelled in, so the reader also checks
        # this flag each time a read returns (within ``block_ms``).
        self._closing = True
        for flusher in self._flushers.values():  # unsent deltas are stored with their reply
            flusher.cancel()
        self._flushers.clear()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, timeout=self._block_ms / 1000 + 1)
            self._reader = None
        with contextlib.suppress(RedisError):
            await self._redis.delete(self._wake)

    async def publish(self, event: ConversationEvent) -> None:
        key = self.stream(event.conversation_id)
        if event.event == DELTA and self._delta_batch_s > 0:
            self._waiting.setdefault(key, []).append(event)
            if key not in self._flushers:
                self._flushers[key] = asyncio.create_task(self._flush_later(key))
            return
        await self._send(key, [event])

    async def _flush_later(self, key: str) -> None:
        await asyncio.sleep(self._delta_batch_s)
        self._flushers.pop(key, None)
        try:
            await self._send(key, [])
        except CoordinationError as exc:  # stored with the reply all the same; resume has them
            log.warning("deltas not published", stream=key, error=str(exc))

    async def _send(self, key: str, events: list[ConversationEvent]) -> None:
        async with self._sending.hold(key):
            batch = self._waiting.pop(key, []) + events
            if not batch:
                return
            body = json.dumps(
                [[e.conversation_id, e.seq, e.event, e.payload] for e in batch],
                separators=(",", ":"),
            )
            try:
                await self._redis.xadd(key, {"e": body}, maxlen=self._maxlen, approximate=True)
            except RedisError as exc:
                raise CoordinationError(f"cannot publish the event: {exc}") from exc

    async def recent(self, conversation_id: str, *, after_seq: int) -> list[ConversationEvent]:
        key = self.stream(conversation_id)
        newest_first: list[ConversationEvent] = []
        upper = "+"
        while True:
            try:
                page: Any = await self._redis.xrevrange(key, max=upper, count=_PAGE)
            except RedisError as exc:
                raise CoordinationError(f"cannot read the stream: {exc}") from exc
            for raw_id, fields in page:
                for event in reversed(_events(key, raw_id, fields)):
                    if event.seq <= after_seq:  # the caller has it and everything before
                        return newest_first[::-1]
                    newest_first.append(event)
            if len(page) < _PAGE:
                return newest_first[::-1]
            upper = "(" + _text(page[-1][0])  # exclusive: the next page starts below it

    @asynccontextmanager
    async def subscribe(
        self, conversation_id: str
    ) -> AsyncIterator[AsyncIterator[ConversationEvent]]:
        key = self.stream(conversation_id)
        await self._send(key, [])  # deltas published before this are not the subscriber's
        try:
            newest: Any = await self._redis.xrevrange(key, count=1)  # redis-py is untyped here
        except RedisError as exc:
            raise CoordinationError(f"cannot subscribe: {exc}") from exc
        subscription = _Subscription(parse_id(newest[0][0]) if newest else (0, 0))
        subscribers = self._subs.setdefault(key, set())
        subscribers.add(subscription)
        cursor = self._cursors.get(key)
        if cursor is None or subscription.after < cursor:
            self._cursors[key] = subscription.after
        await self._nudge()
        try:
            yield _drain(subscription.queue)
        finally:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subs[key]
                self._cursors.pop(key, None)

    def subscriber_count(self, conversation_id: str) -> int:
        return len(self._subs.get(self.stream(conversation_id), ()))

    async def _nudge(self) -> None:
        """Wake the reader so the next XREAD includes a new stream."""
        try:
            await self._redis.xadd(self._wake, {"w": "1"}, maxlen=10, approximate=False)
        except RedisError as exc:
            raise CoordinationError(f"cannot subscribe: {exc}") from exc

    def _stopping(self) -> bool:
        return self._closing  # set by close() while a read is in flight

    async def _read_forever(self) -> None:
        wake_cursor = "$"
        while not self._stopping():
            streams: dict[Any, Any] = {k: format_id(c) for k, c in self._cursors.items()}
            streams[self._wake] = wake_cursor
            try:
                answer: Any = await self._redis.xread(streams, block=self._block_ms, count=512)
            except RedisError as exc:
                if self._stopping():
                    return
                log.warning("event bus read failed; retrying", error=str(exc))
                await asyncio.sleep(self._retry_s)
                continue
            for raw_key, entries in answer or ():
                key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                if key == self._wake:
                    wake_cursor = format_id(parse_id(entries[-1][0]))
                    continue
                self._deliver(key, entries)

    def _deliver(self, key: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        subscribers = self._subs.get(key)
        if not subscribers:
            return
        for raw_id, fields in entries:
            entry_id = parse_id(raw_id)
            self._cursors[key] = entry_id
            for event in _events(key, raw_id, fields):
                for subscription in subscribers:
                    if entry_id > subscription.after:
                        subscription.queue.put_nowait(event)


def _text(raw: str | bytes) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _events(key: str, raw_id: Any, fields: dict[bytes, bytes]) -> list[ConversationEvent]:
    """The events of one stream entry (a batch, or a single event as written before
    batching); a malformed entry is logged and skipped."""
    try:
        items = json.loads(fields[b"e"])
        if items and not isinstance(items[0], list):
            items = [items]
        return [ConversationEvent(c, seq, name, payload) for c, seq, name, payload in items]
    except (KeyError, ValueError, TypeError):
        log.warning("malformed event on the bus skipped", stream=key, id=raw_id)
        return []


async def _drain(queue: asyncio.Queue[ConversationEvent]) -> AsyncIterator[ConversationEvent]:
    while True:
        yield await queue.get()
