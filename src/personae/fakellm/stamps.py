"""The words a fake reply is made of: each carries a wall-clock time in nanoseconds.

`` t<ns>`` is a token, stamped when the backend emitted it; `` a<ns>`` (first, optional) is when
the request arrived. The format is the contract with the load generator (personae.loadgen reads
it back out of the text a gateway delivers), so it is plain words that survive any proxy.
"""

from __future__ import annotations

import time

TOKEN_PREFIX = "t"
ARRIVAL_PREFIX = "a"


def token_word(now_ns: int | None = None) -> str:
    return f" {TOKEN_PREFIX}{time.time_ns() if now_ns is None else now_ns}"


def arrival_word(arrived_ns: int) -> str:
    return f" {ARRIVAL_PREFIX}{arrived_ns}"
