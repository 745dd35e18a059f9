"""``personae bench``: a load generator that models chat traffic against a Personae server (or
any OpenAI-compatible endpoint) and reports throughput, latency, time to first token, the
latency the gateway adds to the backend's own time, errors, and the server's CPU and memory.

Runs in its own process on asyncio; an adapter like the others, it imports nothing of Personae
but its own modules (the fake backend's stamp format is restated in ``stamps.py``).
"""

from personae.loadgen.config import BenchConfig
from personae.loadgen.runner import run_bench

__all__ = ["BenchConfig", "run_bench"]
