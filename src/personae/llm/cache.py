"""An optional, in-memory response cache for deterministic requests (temperature 0): the same
prompt to the same chain gets the same reply without a backend call. Off by default.

Only whole replies are stored; the key is a hash of everything that shapes the reply.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from personae.core.types import ChatRequest, ModelChunk


@dataclass(frozen=True, slots=True)
class CacheEntry:
    chunks: tuple[ModelChunk, ...]
    stored_at: float


class ResponseCache:
    def __init__(
        self,
        *,
        max_entries: int = 1024,
        ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("max_entries must be >= 1 and ttl_s > 0")
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(chain: str, request: ChatRequest) -> str | None:
        """The cache key of a request, or ``None`` when its reply is not deterministic."""
        params = request.params
        if params.temperature != 0:
            return None
        shape = {
            "chain": chain,
            "messages": [
                [m.role.value, m.content, m.name, m.tool_call_id, [repr(c) for c in m.tool_calls]]
                for m in request.messages
            ],
            "params": [params.max_tokens, params.top_p, list(params.stop), params.seed],
            "names": [request.assistant_name, request.user_name],
            "tools": [[t.name, t.description, t.parameters] for t in request.tools],
            "tool_choice": request.tool_choice,
        }
        encoded = json.dumps(
            shape, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=repr
        ).encode()
        return hashlib.sha256(encoded).hexdigest()

    def get(self, key: str) -> tuple[ModelChunk, ...] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() - entry.stored_at > self.ttl_s:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.chunks

    def put(self, key: str, chunks: tuple[ModelChunk, ...]) -> None:
        self._entries[key] = CacheEntry(chunks, self._clock())
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
