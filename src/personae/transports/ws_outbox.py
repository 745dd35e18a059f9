"""A connection's outgoing frames: bounded, so that one slow reader costs one connection, and
able to merge a run of queued deltas into one frame (at most one delta frame per ~20 ms).

It is a plain queue with no waiting in it: the connection runs a writer task only while frames
wait (``Connection._put`` starts one), so an idle connection holds no writer at all."""

from __future__ import annotations

from collections import deque
from typing import Any


class OutboxFull(Exception):
    pass


class Outbox:
    def __init__(self, *, limit: int) -> None:
        self._frames: deque[dict[str, Any]] = deque()
        self._limit = limit

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: dict[str, Any]) -> None:
        if len(self._frames) >= self._limit:
            raise OutboxFull
        self._frames.append(frame)

    def pop(self) -> dict[str, Any]:
        """The oldest frame; ``IndexError`` when there is none."""
        return self._frames.popleft()

    def take_deltas_after(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Merge into ``frame`` the queued deltas that continue it (same conversation, next
        seqs), wherever they wait in the queue: frames of other conversations may sit between
        them. The merged frame covers ``first_seq..seq``; every other frame keeps its order."""
        conversation = frame["conversation"]
        texts = [frame["payload"]["text"]]
        last = frame["seq"]
        kept: deque[dict[str, Any]] = deque()
        scanning = True
        for queued in self._frames:
            if scanning and queued.get("conversation") == conversation:
                if queued.get("event") == "message.delta" and queued.get("seq") == last + 1:
                    texts.append(queued["payload"]["text"])
                    last = queued["seq"]
                    continue
                scanning = False  # anything else of this conversation must stay behind
            kept.append(queued)
        if last == frame["seq"]:
            return frame
        self._frames = kept
        payload = {**frame["payload"], "text": "".join(texts)}
        return {
            **frame,
            "seq": last,
            "first_seq": frame.get("first_seq", frame["seq"]),
            "payload": payload,
        }
