"""Scale-out on one machine (issues 8 and 12): the same saturating load against one Personae
process with in-process coordination, one with Redis, and ``--workers 2`` with Redis, with
the throughput ratio of two workers to one.

What it does:

1. starts a ``redis-server`` on a free loopback port (no persistence) and ``personae fake-llm``;
2. for each setup, starts ``personae serve`` (fresh SQLite data, the repo's characters) and
   runs ``personae bench`` (its own process, Poisson arrivals at ``--rate``, whole replies
   over HTTP, ``--duration`` seconds), then stops it;
3. prints turns/s completed, latency and the ratio of each setup to one local process.

The load generator, the fake backend, Redis and the workers all share this machine's two
cores: two workers can use at most what the others leave. The load average is printed.

    .venv/bin/python bench/workers_scaling.py                  # ~1 minute
    .venv/bin/python bench/workers_scaling.py --rate 400 --duration 15
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _server import (
    Subprocess,
    dump_json,
    fake_llm,
    free_port,
    load_average,
    note,
    personae_server,
    print_table,
)

SETUPS = (
    ("1 process, local", 1, "local"),
    ("1 process, redis", 1, "redis"),
    ("2 workers, redis", 2, "redis"),
)


@contextlib.contextmanager
def redis_server(root: Path) -> Any:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(root)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            done = subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
            )
            if done.stdout.strip() == "PONG":
                break
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def server(workers: int, coordination: str, redis_url: str, llm_url: str, root: Path) -> Subprocess:
    env = {"PERSONAE_LLM_MAX_CONCURRENCY": "1024", "PERSONAE_WATCH_CHARACTERS": "false"}
    if coordination == "redis":
        env |= {
            "PERSONAE_COORDINATION_BACKEND": "redis",
            "PERSONAE_COORDINATION_REDIS_URL": redis_url,
        }
    process = personae_server(llm_base_url=llm_url, data_root=root, extra_env=env)
    if workers == 1:
        return process
    port = free_port()
    argv = [*process.argv[:-2], "--port", str(port), "--workers", str(workers)]
    return Subprocess(
        argv,
        name="personae-workers",
        env=process.env,
        cwd=root,
        url=f"http://127.0.0.1:{port}",
        ready_path="/readyz",
    )


def bench(url: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "personae", "bench",
        "--url", url, "--rate", f"{args.rate:g}", "--duration", f"{args.duration:g}",
        "--server-pid", str(pid), "--seed", "1", "--warmup", "20",
        "--json", "--no-progress", "--no-stream",
    ]  # fmt: skip
    load = load_average()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if not done.stdout.strip().startswith("{"):
        raise RuntimeError(f"personae bench failed:\n{done.stderr[-2000:]}")
    report = dict(json.loads(done.stdout))
    report["load_average_before_run"] = load
    return report


def run(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        root = Path(tmp)
        redis_url = stack.enter_context(redis_server(root))
        fake = stack.enter_context(fake_llm("--reply-tokens=fixed:20", "--tokens-per-s=2000"))
        for index, (name, workers, coordination) in enumerate(SETUPS):
            data = root / f"setup-{index}"
            data.mkdir()
            note(f"{name}: {args.rate:g} turns/s offered for {args.duration:g} s")
            with server(workers, coordination, redis_url, fake.url + "/v1", data) as personae:
                runs.append({"setup": name, "report": bench(personae.url, personae.pid, args)})
    return {"rate": args.rate, "duration": args.duration, "runs": runs}


def report(figures: dict[str, Any]) -> None:
    base = figures["runs"][0]["report"]["throughput"]["turns_per_s"]
    rows = []
    for run_ in figures["runs"]:
        r = run_["report"]
        rate = r["throughput"]["turns_per_s"]
        latency = r["latency_ms"]
        rows.append(
            (
                run_["setup"],
                f"{rate:g}",
                f"{rate / base:.2f}" if base else "-",
                f"{r['turns']['completed']}/{r['turns']['failed']}",
                f"{latency.get('p50', 0):.1f} / {latency.get('p99', 0):.1f}",
                ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0",
                r["load_average_before_run"].split()[0],
            )
        )
    header = ("setup", "turns/s", "vs 1 local", "ok/failed", "latency p50/p99 ms", "errors", "load")
    print_table(f"whole turns at {figures['rate']:g}/s offered", rows, header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = run(args)
    if args.json:
        dump_json(figures)
    else:
        report(figures)


if __name__ == "__main__":
    main()
