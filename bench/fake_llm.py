"""The benchmarks' fake OpenAI-compatible backend: a thin wrapper over ``personae fake-llm``
(src/personae/fakellm/), kept so that the scripts here and their documented command lines still
work. Replies are ``--reply-tokens`` tokens at ``--tokens-per-s``, each token the word
`` t<ns>`` (``time.time_ns()`` when it was emitted); ``GET /stats`` reports the pacing lag.

Unlike ``personae fake-llm``, replies do not open with the `` a<ns>`` arrival stamp (pass
``--stamp-arrival`` for it): the WebSocket benchmarks count every word that is not a token.

    .venv/bin/python bench/fake_llm.py --tokens-per-s 50 --reply-tokens 100

It prints ``fake-llm listening on http://127.0.0.1:PORT``; the OpenAI base URL is that plus
``/v1``.
"""

from __future__ import annotations

import argparse

from personae.fakellm import FakeLLM, FakeLLMConfig, ReplyLengths, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens-per-s", type=float, default=50.0)
    parser.add_argument("--reply-tokens", type=int, default=100)
    parser.add_argument("--first-token-s", type=float, default=0.0)
    parser.add_argument("--stamp-arrival", action="store_true")
    args = parser.parse_args()
    config = FakeLLMConfig(
        first_token_s=args.first_token_s,
        tokens_per_s=args.tokens_per_s,
        lengths=ReplyLengths("fixed", args.reply_tokens, args.reply_tokens),
        stamp_arrival=args.stamp_arrival,
    )
    serve(FakeLLM(config), port=args.port)


if __name__ == "__main__":
    main()
