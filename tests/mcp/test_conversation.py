"""A character uses a real MCP server's tool in a conversation: the server (official SDK,
stdio) is declared in settings, connected at start-up, and its tool is a skill the character
allow-lists. Two ways in: the model's tool call (core/tool_loop.py) and a slash command."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

from personae.app import Runtime, open_runtime
from personae.core.events import MessageDone, TurnEvent
from personae.core.ports import ChatModel
from personae.core.types import InboundMessage, Role
from personae.settings import Settings
from personae.testing import FakeChatModel
from tests.mcp.conftest import ORDER_SERVER

CLERK = """\
id: clerk
name: Clerk
description: The shop's order desk.
persona: "{{char}} answers questions about orders, briefly."
greeting: "Order desk. Which order?"
skills: [orders__lookup_order]
"""


def settings_for(tmp_path: Path) -> Settings:
    characters = tmp_path / "characters"
    characters.mkdir()
    (characters / "clerk.yaml").write_text(CLERK)
    server = {"command": sys.executable, "args": [str(ORDER_SERVER)], "connect_timeout_s": 30}
    return Settings(
        data_dir=tmp_path / "data",
        characters_dir=characters,
        watch_characters=False,
        routes={"retry": {"retries": 0}},  # type: ignore[arg-type]
        mcp={"servers": {"orders": server}},  # type: ignore[arg-type]
    )


@asynccontextmanager
async def runtime_with(tmp_path: Path, model: ChatModel) -> AsyncIterator[Runtime]:
    async with open_runtime(settings_for(tmp_path), backends={"fake": model}) as runtime:
        yield runtime


async def reply_to(runtime: Runtime, text: str) -> MessageDone:
    inbound = InboundMessage(user="ann", character_id="clerk", text=text)
    events: list[TurnEvent] = []
    async with aclosing(runtime.service.turn(inbound)) as turn:
        events = [event async for event in turn]
    done = events[-1]
    assert isinstance(done, MessageDone), events
    return done


async def test_the_model_calls_the_mcp_tool_and_answers_from_it(tmp_path: Path) -> None:
    model = FakeChatModel(supports_tools=True)
    model.enqueue_tool_calls(("orders__lookup_order", {"order_id": "A-1001"}))
    model.enqueue("Order A-1001 is shipped with DHL.")
    async with runtime_with(tmp_path, model) as runtime:
        done = await reply_to(runtime, "Where is my order A-1001?")

    assert done.message.content == "Order A-1001 is shipped with DHL."
    offered = {tool.name: tool for tool in model.requests[0].tools}
    assert set(offered) == {"orders__lookup_order"}  # what the character allow-lists
    assert offered["orders__lookup_order"].parameters["required"] == ["order_id"]
    tool_message = model.requests[1].messages[-1]
    assert tool_message.role is Role.TOOL
    assert tool_message.tool_call_id == model.requests[1].messages[-2].tool_calls[0].id
    assert json.loads(tool_message.content)["data"]["eta"] == "2026-12-02"


async def test_a_slash_command_runs_the_mcp_tool_without_the_model(tmp_path: Path) -> None:
    model = FakeChatModel()
    async with runtime_with(tmp_path, model) as runtime:
        done = await reply_to(runtime, "/orders__lookup_order A-1002")
        failed = await reply_to(runtime, "/orders__lookup_order Z-9")
        ready = await runtime.readiness()

    assert ready["mcp:orders"] == "ok"
    assert json.loads(done.message.content)["status"] == "packing"
    assert done.message.model == "skill:orders__lookup_order"
    assert failed.message.content == (
        "Sorry, orders__lookup_order failed: Error executing tool lookup_order: no order 'Z-9'."
    )
    assert model.requests == []


async def test_a_tool_the_character_does_not_list_is_not_offered(tmp_path: Path) -> None:
    model = FakeChatModel(default_reply="No tools here.")
    async with runtime_with(tmp_path, model) as runtime:
        # slow_echo is a skill too, but the clerk does not list it: the text goes to the model.
        done = await reply_to(runtime, "/orders__slow_echo hello")

    assert done.message.content == "No tools here."
    assert len(model.requests) == 1
