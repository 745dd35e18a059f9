"""``personae fake-llm``: the typer command (cli/root.py registers it)."""

from __future__ import annotations

from typing import Annotated

import typer

from personae.fakellm.app import FakeLLM
from personae.fakellm.config import FakeLLMConfig
from personae.fakellm.faults import FaultRates
from personae.fakellm.lengths import ReplyLengths
from personae.fakellm.server import serve


def fake_llm(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (announced on stderr).")] = 0,
    first_token_s: Annotated[
        float, typer.Option(help="Seconds from a request's arrival to its first token.")
    ] = 0.0,
    tokens_per_s: Annotated[
        float, typer.Option(help="Pace of each reply; 0 = as fast as possible.")
    ] = 50.0,
    reply_tokens: Annotated[
        str,
        typer.Option(help="Reply length: fixed:N, uniform:LOW-HIGH or lognormal:MEDIAN,SIGMA."),
    ] = "fixed:100",
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="KIND=RATE, repeatable; KIND: 429, 500, 503, timeout (the request hangs), "
            "disconnect (cut midway)."
        ),
    ] = None,
    hang_s: Annotated[float, typer.Option(help="How long a timeout fault holds a request.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Seeds reply lengths and faults.")] = 0,
    stamp_arrival: Annotated[
        bool, typer.Option(help="Open each reply with ' a<ns>', the request's arrival time.")
    ] = True,
    embedding_dims: Annotated[int, typer.Option(help="Size of the fake embeddings.")] = 384,
    model: Annotated[str, typer.Option(help="The model id /v1/models lists.")] = "fake",
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "warning",
) -> None:
    """An OpenAI-compatible fake backend for benchmarks and tests: every reply token is
    ' t<ns>', the time it was emitted."""
    try:
        config = FakeLLMConfig(
            first_token_s=first_token_s,
            tokens_per_s=tokens_per_s,
            lengths=ReplyLengths.parse(reply_tokens),
            faults=FaultRates.parse(fault or []),
            seed=seed,
            stamp_arrival=stamp_arrival,
            hang_s=hang_s,
            embedding_dims=embedding_dims,
            model=model,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    serve(FakeLLM(config), host=host, port=port, log_level=log_level)
