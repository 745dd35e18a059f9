"""The mid-term job in the runtime: started under the supervisor with memory on, on the backend
``memory.midterm_backend`` names, its summary in the next prompts; a backend it does not know
is a configuration error at start."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from pathlib import Path

import pytest

from personae.app.runtime import Runtime, open_runtime
from personae.core.memory.summary import SUMMARY_HEADING
from personae.core.types import InboundMessage
from personae.errors import ConfigurationError
from personae.testing import FakeChatModel
from tests.memory.midterm_harness import summary_answer
from tests.transports.conftest import make_settings

MEMORY = {
    "enabled": True,
    "embedder": "none",
    "summary_min_messages": 2,
    "extract_every_turns": 0,
    "midterm_backend": "writer",
}


async def say(runtime: Runtime, text: str) -> None:
    inbound = InboundMessage(user="sam", character_id="mira", text=text)
    async with aclosing(runtime.service.turn(inbound)) as events:
        async for _ in events:
            pass


async def test_the_job_runs_on_its_backend_and_the_summary_reaches_the_prompt(
    tmp_path: Path,
) -> None:
    chat = FakeChatModel()
    writer = FakeChatModel(default_reply=summary_answer("Sam talked about kites."))
    settings = make_settings(tmp_path, memory=MEMORY, limits={"history_messages": 4})
    async with open_runtime(settings, backends={"fake": chat, "writer": writer}) as runtime:
        assert runtime.supervisor.status()["memory-midterm"].describe() == "ok"
        for turn in range(4):
            await say(runtime, f"Kite number {turn}.")
        async with asyncio.timeout(10):  # the job works off the turn's path
            while True:
                await say(runtime, "And now?")
                sent = [m.content for m in chat.requests[-1].messages]
                if f"{SUMMARY_HEADING}\nSam talked about kites." in sent:
                    break
                await asyncio.sleep(0.05)
    assert "Kite number 0." in writer.requests[0].messages[1].content


async def test_an_unknown_midterm_backend_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, memory={**MEMORY, "midterm_backend": "nope"})
    with pytest.raises(ConfigurationError, match=r"memory\.midterm_backend"):
        async with open_runtime(settings, backends={"fake": FakeChatModel()}):
            pass
