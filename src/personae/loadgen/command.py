"""``personae bench``: the typer command (cli/root.py registers it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import uvloop
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from personae.loadgen.config import BenchConfig, Transport
from personae.loadgen.report import compare, load_baseline, render
from personae.loadgen.runner import run_bench
from personae.loadgen.tally import Tally


def bench(
    url: Annotated[str, typer.Option(help="The server's base URL.")] = "http://127.0.0.1:8000",
    transport: Annotated[str, typer.Option(help="ws or http (OpenAI-compatible API).")] = "http",
    stream: Annotated[bool, typer.Option(help="HTTP: stream the replies (SSE).")] = True,
    duration: Annotated[float, typer.Option(help="Seconds of load.")] = 10.0,
    rate: Annotated[
        float | None, typer.Option(help="Open loop: Poisson arrivals, turns per second.")
    ] = None,
    users: Annotated[
        int | None, typer.Option(help="Closed loop: concurrent users, one turn at a time each.")
    ] = None,
    think: Annotated[float, typer.Option(help="Closed loop: mean think time, seconds.")] = 0.0,
    characters: Annotated[
        str | None,
        typer.Option(help="Comma-separated ids, most popular first (default: /v1/models)."),
    ] = None,
    zipf: Annotated[float, typer.Option(help="Zipf exponent of character/intent choice.")] = 1.1,
    context_words: Annotated[int, typer.Option(help="Median words per message (log-normal).")] = 20,
    context_sigma: Annotated[float, typer.Option(help="Sigma of log(words).")] = 0.8,
    max_tokens: Annotated[int | None, typer.Option(help="HTTP: max_tokens per turn.")] = None,
    max_in_flight: Annotated[
        int, typer.Option(help="Open loop: arrivals beyond this many running turns are dropped.")
    ] = 2000,
    timeout: Annotated[float, typer.Option(help="Seconds a turn may take.")] = 60.0,
    drain: Annotated[float, typer.Option(help="Seconds to wait for turns at the end.")] = 30.0,
    warmup: Annotated[
        int, typer.Option(help="Turns sent one by one before measuring, not counted.")
    ] = 0,
    api_key: Annotated[str | None, typer.Option(envvar="PERSONAE_API_KEY")] = None,
    server_pid: Annotated[
        int | None, typer.Option(help="Read the server's CPU/RSS from /proc (else /metrics).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the traffic.")] = 1,
    output: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, not the table.")] = False,
    baseline: Annotated[
        Path | None, typer.Option(help="A saved JSON report to compare with.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a live progress bar on stderr.")] = True,
) -> None:
    """Load a Personae server (or any OpenAI-compatible endpoint) with modelled chat traffic
    and report throughput, latency, TTFT, the gateway's added latency, errors, CPU and RSS."""
    try:
        config = BenchConfig(
            url=url,
            transport=_transport(transport),
            stream=stream,
            duration_s=duration,
            rate=rate,
            users=users,
            think_s=think,
            characters=tuple(c.strip() for c in (characters or "").split(",") if c.strip()),
            zipf_s=zipf,
            context_words=context_words,
            context_sigma=context_sigma,
            max_tokens=max_tokens,
            max_in_flight=max_in_flight,
            turn_timeout_s=timeout,
            drain_s=drain,
            warmup_turns=warmup,
            api_key=api_key,
            server_pid=server_pid,
            seed=seed,
        )
        before = load_baseline(baseline) if baseline is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    report = _run(config, progress)
    if before is not None:
        report["baseline_comparison"] = compare(report, before)
    text = json.dumps(report, indent=2)
    if output is not None:
        output.write_text(text + "\n")
    if as_json:
        typer.echo(text)
    else:
        render(report, Console())
    if report["turns"]["completed"] == 0:
        typer.echo("no turn completed", err=True)
        raise typer.Exit(1)


def _transport(value: str) -> Transport:
    if value == "ws":
        return "ws"
    if value == "http":
        return "http"
    raise ValueError(f"transport must be ws or http, got {value!r}")


def _run(config: BenchConfig, show: bool) -> dict[str, Any]:
    if not show:
        return uvloop.run(run_bench(config))
    columns = (
        TextColumn("[bold]bench[/bold]"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("starting", total=config.duration_s)

        def tick(elapsed: float, tally: Tally) -> None:
            rate = tally.completed / elapsed if elapsed > 0 else 0.0
            bar.update(
                task,
                completed=min(elapsed, config.duration_s),
                description=f"done {tally.completed}  failed {tally.failed}  "
                f"in flight {tally.in_flight}  {rate:.1f} turns/s",
            )

        return uvloop.run(run_bench(config, on_tick=tick))
