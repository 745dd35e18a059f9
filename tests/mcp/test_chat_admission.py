"""The MCP ``chat`` tool takes its slot from the process's admission control, like HTTP and
WebSocket turns: past the bounds it is an ``overloaded`` tool error, at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.mcp.test_http_server import call
from tests.transports.security_helpers import deployment

ONE_AT_A_TIME = {"max_concurrent_turns": 1, "max_queued_turns": 0}


async def test_chat_past_the_bounds_is_an_overloaded_tool_error(tmp_path: Path) -> None:
    with deployment(tmp_path, realtime=ONE_AT_A_TIME) as d:
        d.model.enqueue("a slow reply over HTTP", first_token_delay_s=2.0)
        headers = {"Authorization": f"Bearer {d.keys['bob']}"}
        async with httpx.AsyncClient(base_url=d.url, headers=headers, timeout=30) as http:
            body = {"model": "aria", "messages": [{"role": "user", "content": "Hi"}]}
            running = asyncio.create_task(http.post("/v1/chat/completions", json=body))
            async with asyncio.timeout(10):
                while True:  # until bob's turn reached the model: it holds the only slot
                    if d.model.requests:
                        break
                    await asyncio.sleep(0.01)
            refused = await call(d, "alice", "chat", character="aria", message="Hello?")
            assert refused == (
                True,
                "overloaded: the server is at capacity; try again shortly",
                None,
            )
            assert len(d.model.requests) == 1  # alice's call never reached the model
            assert (await running).status_code == 200

        d.model.enqueue("Now there is room.")
        failed, text, _ = await call(d, "alice", "chat", character="aria", message="Hello?")
        assert (failed, text) == (False, "Now there is room.")
