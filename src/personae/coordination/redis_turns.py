"""InflightTurns on Redis: which node runs which acknowledged turn, and whether that node is
still alive.

    begin / end   HSET / HDEL <prefix>:turns <lock key> [conversation, reply_to, ack_seq, node]
    alive         SET <prefix>:node:<node> PX visibility_timeout, renewed every third of it
    orphans       the turns whose node's key has expired

A node that is killed stops renewing; ``visibility_timeout`` later its turns are orphans, and
any node ends them (``ConversationHub.end_orphans``) once it holds their lock, which the dead
node's lease has let go of by then. A node that was only slow still holds the lock: whoever
wants to end its turn waits for it, finds the turn finished, and leaves it be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from personae.core.ports import InflightTurn, InflightTurns, Resource
from personae.errors import CoordinationError

log = structlog.get_logger(__name__)


class RedisInflightTurns(InflightTurns, Resource):
    def __init__(
        self, redis: Redis, *, node: str, prefix: str = "personae", visibility_timeout_s: float
    ) -> None:
        self._redis = redis
        self.node = node
        self._hash = f"{prefix}:turns"
        self._node_prefix = f"{prefix}:node:"
        self._ttl_ms = int(visibility_timeout_s * 1000)
        self._beat: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            await self._alive()  # a Redis that cannot be reached fails the start, clearly
        except RedisError as exc:
            raise CoordinationError(f"cannot reach Redis: {exc}") from exc
        self._beat = asyncio.create_task(self._keep_alive(), name="inflight-turns-heartbeat")

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        with contextlib.suppress(RedisError):  # its turns have ended: nothing to reclaim
            await self._redis.delete(self._node_prefix + self.node)

    async def begin(self, turn: InflightTurn) -> None:
        body = json.dumps([turn.conversation_id, turn.reply_to, turn.ack_seq, turn.node])
        await self._call(self._redis.hset(self._hash, turn.key, body))

    async def end(self, key: str) -> None:
        await self._call(self._redis.hdel(self._hash, key))

    async def get(self, key: str) -> InflightTurn | None:
        raw = await self._call(self._redis.hget(self._hash, key))
        return _parse(key, raw) if raw is not None else None

    async def orphans(self) -> list[InflightTurn]:
        raw: dict[Any, Any] = await self._call(self._redis.hgetall(self._hash))
        turns = [t for k, v in raw.items() if (t := _parse(_text(k), v)) is not None]
        nodes = sorted({t.node for t in turns})
        if not nodes:
            return []
        alive = await self._call(self._redis.mget([self._node_prefix + n for n in nodes]))
        dead = {n for n, beat in zip(nodes, alive, strict=True) if beat is None}
        return [t for t in turns if t.node in dead]

    async def _alive(self) -> None:
        await self._redis.set(self._node_prefix + self.node, "1", px=self._ttl_ms)

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                await self._alive()
            except RedisError as exc:  # try again: one missed beat is not death
                log.warning("node heartbeat failed", node=self.node, error=str(exc))

    async def _call(self, pending: Any) -> Any:
        try:
            return await pending
        except RedisError as exc:
            raise CoordinationError(f"Redis: {exc}") from exc


def _text(raw: str | bytes) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _parse(key: str, raw: str | bytes) -> InflightTurn | None:
    try:
        conversation_id, reply_to, ack_seq, node = json.loads(raw)
        return InflightTurn(key, str(conversation_id), str(reply_to), int(ack_seq), str(node))
    except (ValueError, TypeError):
        log.warning("malformed in-flight turn entry skipped", key=key)
        return None
