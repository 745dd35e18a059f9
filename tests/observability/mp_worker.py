"""A stand-in worker process for the multiprocess metrics test (run with ``-m``).

worker TURNS CONNECTIONS [open]   record TURNS turns, hold CONNECTIONS connections (and an
                                  open breaker), publish, print "ready", wait for stdin
scrape                            print what /metrics would answer in this process
"""

from __future__ import annotations

import os
import sys

from personae.core.breaker import Permit
from personae.core.observe import TurnOutcome, TurnReport
from personae.llm.guard import BackendLimits
from personae.llm.pool import BackendPool
from personae.observability.metrics import Metrics
from personae.observability.sources import LiveSources
from personae.testing import FakeChatModel


class Turns:
    running_turns = 1
    queued_turns = 0
    sessions = (object(), object())


def worker(turns: int, connections: int, breaker_open: bool) -> None:
    metrics = Metrics(multiprocess_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for _ in range(turns):
        metrics.observer.turn_finished(
            TurnReport(
                character="aria",
                backend="fake",
                outcome=TurnOutcome.OK,
                latency_ms=120.0,
                ttft_ms=15.0,
                tokens_in=3,
                tokens_out=2,
            )
        )
    metrics.observer.request_rejected("overloaded")
    pool = BackendPool({"fake": FakeChatModel()}, limits={"fake": BackendLimits()})
    guard = pool.guards["fake"]
    guard.stats.calls = turns
    if breaker_open:
        for _ in range(guard.breaker.failure_threshold):
            guard.breaker.failed(Permit.NORMAL)
    metrics.watch(LiveSources(routing=pool, turns=Turns(), connections=range(connections)))
    print("ready", flush=True)
    sys.stdin.readline()


def main() -> None:
    if sys.argv[1] == "scrape":
        metrics = Metrics(multiprocess_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
        sys.stdout.write(metrics.exposition()[0].decode())
    else:
        worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:] == ["open"])


if __name__ == "__main__":
    main()
