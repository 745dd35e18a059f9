"""Gateway overhead side by side (issue 12): the same load, from ``personae bench`` in its own
process, against the fake backend directly, through Personae, and through the LiteLLM proxy,
all in one run, with the ratios between them.

What it does:

1. starts ``personae fake-llm`` (replies of ``--reply-tokens`` at ``--tokens-per-s``, each token
   stamped with its emission time, each reply opening with the request's arrival time);
2. starts ``personae serve`` in front of it (fresh SQLite data, the repo's characters, the
   default settings otherwise: moderation as shipped; long-term memory as ``--memory`` says,
   off as shipped, ``fulltext`` to write memory items with every message and recall them by
   full-text search, ``minilm`` to embed them too, in the background, with the packaged model);
3. starts ``bench/_bare_proxy.py`` in front of it: a pass-through proxy with no features on the
   same server stack and backend client, the floor under any Python gateway on this machine;
4. starts the LiteLLM proxy in front of the same backend, from its own virtualenv
   (``--litellm``, default ``/tmp/litellm-venv/bin/litellm``; install it there with
   ``python3 -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'``
   so its dependencies stay out of the project's); if it is missing or does not start, the
   reason is printed and the comparison goes on without it;
5. for each mode (streamed or whole replies) and each rate, runs ``personae bench`` (Poisson
   arrivals, HTTP, ``--duration`` seconds) against each target, one after the other, and reads
   its JSON report.

The *added latency* of a turn is the client's end-to-end time minus the backend's own time
(request arrival to last token, from the stamps). Against the fake directly it is what the
client and the loopback cost; through a gateway, that plus the gateway. The net overhead of a
gateway is its added latency minus the direct one, at the same percentile. The bare proxy's
net overhead is what the stack alone costs (uvicorn, a JSON decode, one aiohttp hop); Personae's
net minus the bare proxy's is what its features cost.

Everything shares this machine's two cores (the load generator too): the load average is
printed with each run.

    .venv/bin/python bench/gateway_overhead.py                     # ~3 minutes
    .venv/bin/python bench/gateway_overhead.py --rates 20 --modes stream --duration 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _server import (
    Subprocess,
    cpu_seconds,
    dump_json,
    fake_llm,
    free_port,
    load_average,
    note,
    personae_server,
    print_table,
)

DEFAULT_LITELLM = Path("/tmp/litellm-venv/bin/litellm")
MEMORY = {  # --memory: long-term memory settings for personae serve
    "off": {},
    "fulltext": {"PERSONAE_MEMORY_ENABLED": "true", "PERSONAE_MEMORY_EMBEDDER": "none"},
    "minilm": {"PERSONAE_MEMORY_ENABLED": "true", "PERSONAE_MEMORY_EMBEDDER": "minilm"},
}


def bare_proxy(backend_url: str) -> Subprocess:
    argv = [
        sys.executable,
        str(Path(__file__).with_name("_bare_proxy.py")),
        "--backend",
        backend_url,
    ]
    return Subprocess(argv, name="bare-proxy")


def start_litellm(binary: Path, backend_url: str, root: Path) -> tuple[Subprocess | None, str]:
    """The LiteLLM proxy routing model ``fake`` to the fake backend, started, and its master
    key; (None, why) if it cannot run here."""
    if not binary.exists():
        return None, f"{binary} not found (see this script's docstring to install it)"
    config = root / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: fake\n"
        "    litellm_params:\n"
        "      model: openai/fake\n"
        f"      api_base: {backend_url}/v1\n"
        "      api_key: not-secret\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    port = free_port()
    env = dict(os.environ)
    env.update(
        LITELLM_MASTER_KEY=f"sk-{secrets.token_hex(16)}",  # it refuses to start without one
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no download of the price list
        LITELLM_LOG="ERROR",
    )
    argv = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proxy = Subprocess(
        argv,
        name="litellm",
        env=env,
        cwd=root,
        url=f"http://127.0.0.1:{port}",
        ready_path="/health/liveliness",
        start_timeout_s=120,
    )
    try:
        proxy.__enter__()
    except RuntimeError as exc:
        return None, f"the LiteLLM proxy did not start: {exc}"
    return proxy, env["LITELLM_MASTER_KEY"]


def bench(
    target: dict[str, Any], rate: float, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "personae", "bench",
        "--url", target["url"],
        "--rate", f"{rate:g}",
        "--duration", f"{args.duration:g}",
        "--server-pid", str(target["pid"]),
        "--seed", str(args.seed),
        "--warmup", str(args.warmup),
        "--json", "--no-progress",
        "--stream" if mode == "stream" else "--no-stream",
    ]  # fmt: skip
    if target.get("api_key"):
        argv += ["--api-key", target["api_key"]]
    load = load_average()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    if not done.stdout.strip().startswith("{"):
        raise RuntimeError(
            f"personae bench against {target['name']} failed:\n{done.stderr[-2000:]}"
        )
    report = dict(json.loads(done.stdout))
    report["load_average_before_run"] = load
    return report


def settle(target: dict[str, Any], *, idle_cores: float = 0.05, limit_s: float = 120.0) -> None:
    """Wait until the target is idle again: a saturated proxy goes on working through its
    backlog after the load generator has given up on it, and would load the next target's run
    (LiteLLM at 100 turns/s and up leaves requests unfinished)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = cpu_seconds(target["pid"])
        time.sleep(0.5)
        if (cpu_seconds(target["pid"]) - before) / 0.5 < idle_cores:
            return
    note(f"{target['name']} still busy {limit_s:g} s after its run; going on")


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        root = Path(tmp)
        fake_options = [
            f"--tokens-per-s={args.tokens_per_s}",
            f"--reply-tokens={args.reply_tokens}",
            f"--first-token-s={args.first_token_s}",
        ]
        fake = stack.enter_context(fake_llm(*fake_options, cwd=root))
        (root / "personae").mkdir()
        server = personae_server(
            llm_base_url=fake.url + "/v1",
            data_root=root / "personae",
            extra_env={"PERSONAE_LLM_MAX_CONCURRENCY": "1024", **MEMORY[args.memory]},
        )
        stack.enter_context(server)
        bare = stack.enter_context(bare_proxy(fake.url))
        targets: list[dict[str, Any]] = [
            {"name": "direct", "url": fake.url, "pid": fake.pid},
            {"name": "bare", "url": bare.url, "pid": bare.pid},
            {"name": "personae", "url": server.url, "pid": server.pid},
        ]
        if args.no_litellm:
            proxy, detail = None, "--no-litellm"
        else:
            proxy, detail = start_litellm(args.litellm, fake.url, root)
        litellm = "included" if proxy is not None else f"left out: {detail}"
        note(f"LiteLLM {litellm}")
        if proxy is not None:
            stack.callback(proxy.__exit__, None, None, None)
            targets.append(
                {"name": "litellm", "url": proxy.url, "pid": proxy.pid, "api_key": detail}
            )
        for mode in args.modes:
            for rate in args.rates:
                for target in targets:
                    note(f"{mode} at {rate:g} turns/s against {target['name']}")
                    report = bench(target, rate, mode, args)
                    settle(target)
                    results.append(
                        {"target": target["name"], "mode": mode, "rate": rate, "report": report}
                    )
    return {"litellm": litellm, "args": _public(args), "runs": results}


def _public(args: argparse.Namespace) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def _pct(report: dict[str, Any], key: str, p: str) -> float | None:
    value = report[key].get(p)
    return None if value is None else float(value)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p50_p99(report: dict[str, Any], key: str) -> str:
    return f"{_fmt(_pct(report, key, 'p50'))} / {_fmt(_pct(report, key, 'p99'))}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b <= 0 else f"{a / b:.2f}"


def report(figures: dict[str, Any]) -> None:
    rows = []
    for run_ in figures["runs"]:
        r = run_["report"]
        rows.append(
            (
                f"{run_['mode']} {run_['rate']:g}/s {run_['target']}",
                f"{r['throughput']['turns_per_s']:g}",
                f"{r['turns']['completed']}/{r['turns']['failed']}",
                _p50_p99(r, "latency_ms"),
                _p50_p99(r, "added_latency_ms"),
                _p50_p99(r, "added_ttft_ms"),
                _fmt(r["server"].get("cpu_cores"), 2),
                ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0",
                r["load_average_before_run"].split()[0],
            )
        )
    header = (
        "mode rate target", "turns/s", "ok/failed", "latency p50/p99 ms",
        "added p50/p99 ms", "added TTFT p50/p99 ms", "server cores", "errors", "load",
    )  # fmt: skip
    print_table("gateway overhead: the same load against each target", rows, header)
    ratios = []
    by_key = {(r["mode"], r["rate"], r["target"]): r["report"] for r in figures["runs"]}
    for mode, rate in dict.fromkeys((r["mode"], r["rate"]) for r in figures["runs"]):
        added = {
            name: by_key.get((mode, rate, name))
            for name in ("direct", "bare", "personae", "litellm")
        }
        for p in ("p50", "p99"):
            d, ba, pe, li = (_pct(r, "added_latency_ms", p) if r else None for r in added.values())
            net_ba, net_pe, net_li = (
                None if x is None or d is None else x - d for x in (ba, pe, li)
            )
            ratios.append(
                (
                    f"{mode} {rate:g}/s {p}",
                    _fmt(d), _fmt(pe), _fmt(li),
                    _fmt(net_ba), _fmt(net_pe), _fmt(net_li),
                    _ratio(pe, d), _ratio(li, d), _ratio(net_pe, net_li),
                )
            )  # fmt: skip
    header = (
        "added latency", "direct ms", "personae ms", "litellm ms", "bare net ms",
        "personae net ms", "litellm net ms", "personae/direct", "litellm/direct",
        "personae net/litellm net",
    )  # fmt: skip
    print_table("ratios (net = added minus direct, same percentile, same run)", ratios, header)
    print(
        f"\nLiteLLM: {figures['litellm']}; Personae's long-term memory: "
        f"{figures['args']['memory']}; load average now {load_average()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[20.0, 100.0])
    parser.add_argument(
        "--modes", nargs="+", choices=["stream", "whole"], default=["stream", "whole"]
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--reply-tokens", default="fixed:20")
    parser.add_argument("--tokens-per-s", type=float, default=500.0)
    parser.add_argument("--first-token-s", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20, help="turns per run before measuring")
    parser.add_argument(
        "--litellm", type=Path, default=Path(os.environ.get("LITELLM_BIN", DEFAULT_LITELLM))
    )
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument(
        "--memory", choices=sorted(MEMORY), default="off", help="Personae's long-term memory"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = run(args)
    if args.json:
        dump_json(figures)
    else:
        report(figures)


if __name__ == "__main__":
    main()
