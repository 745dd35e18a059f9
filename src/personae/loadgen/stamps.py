"""Read back the times a fake backend (``personae fake-llm``) wrote into a reply.

A reply is words: `` a<ns>`` (when the backend got the request, optional, first) then one
`` t<ns>`` per token (when the backend emitted it), nanoseconds of the shared wall clock. A
gateway passes them on as text, so the client can tell the backend's own time from the rest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stamps:
    arrival_ns: int | None
    first_token_ns: int | None
    last_token_ns: int | None
    tokens: int

    @property
    def backend_ms(self) -> float | None:
        """The backend's own time for the turn: request arrival to the last token."""
        if self.arrival_ns is None or self.last_token_ns is None:
            return None
        return (self.last_token_ns - self.arrival_ns) / 1e6

    @property
    def backend_ttft_ms(self) -> float | None:
        if self.arrival_ns is None or self.first_token_ns is None:
            return None
        return (self.first_token_ns - self.arrival_ns) / 1e6


def read_stamps(text: str) -> Stamps:
    """Stamps in ``text``; words that are not stamps are ignored (a real model's reply has
    none, and every figure that needs them is then left out)."""
    arrival: int | None = None
    first: int | None = None
    last: int | None = None
    tokens = 0
    for word in text.split():
        kind, digits = word[:1], word[1:]
        if not digits.isdigit():
            continue
        if kind == "t":
            stamp = int(digits)
            first = stamp if first is None else min(first, stamp)
            last = stamp if last is None else max(last, stamp)
            tokens += 1
        elif kind == "a" and arrival is None:
            arrival = int(digits)
    return Stamps(arrival, first, last, tokens)
