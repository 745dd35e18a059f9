"""``personae fake-llm``: an OpenAI-compatible backend for benchmarks and tests.

Chat completions (streamed and not), embeddings and ``/v1/models``, with a configurable time to
first token, pace, reply length distribution and injected faults. Every reply token is the word
`` t<ns>``, the backend's wall clock when it emitted the token, and (optionally) the reply
opens with `` a<ns>``, when the request arrived: a client on the same machine subtracts these
from its own clock to tell the backend's time from the time spent in between (``stamps.py``).
Tests can script replies instead, tool calls included (``script.py``).

An adapter like the others: it imports nothing of Personae but its own modules.
"""

from personae.fakellm.app import FakeLLM
from personae.fakellm.config import FakeLLMConfig
from personae.fakellm.faults import FaultRates
from personae.fakellm.lengths import ReplyLengths
from personae.fakellm.script import Scripted, ScriptedCall
from personae.fakellm.server import serve

__all__ = [
    "FakeLLM",
    "FakeLLMConfig",
    "FaultRates",
    "ReplyLengths",
    "Scripted",
    "ScriptedCall",
    "serve",
]
