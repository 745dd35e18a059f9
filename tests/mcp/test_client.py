"""MCP tools as skills, against a real MCP server (official SDK) run as a stdio subprocess."""

from __future__ import annotations

import sys
import time

import pytest
from structlog.testing import capture_logs

from personae.core.skills import Intent, SkillContext, SkillRunner, SlashCommand
from personae.mcp.client import Backoff, McpConnection
from personae.mcp.errors import McpUnavailable
from personae.mcp.skills import connect_all, connect_skills, skill_name
from tests.mcp.conftest import order_target

CONTEXT = SkillContext("ann", "clerk", "conv-1", "/orders__lookup_order A-1001")


def test_skill_names_fit_skills_and_openai_tools() -> None:
    assert skill_name("orders", "lookup_order") == "orders__lookup_order"
    assert skill_name("shop", "Get Order.v2") == "shop__get_order_v2"
    assert len(skill_name("s", "x" * 100)) == 64


async def test_tools_become_skills_with_the_tool_schema(orders: McpConnection) -> None:
    skills = {s.name: s for s in await connect_skills(orders)}

    assert set(skills) == {"orders__lookup_order", "orders__slow_echo", "orders__crash"}
    lookup = skills["orders__lookup_order"]
    assert lookup.parameters["required"] == ["order_id"]
    assert lookup.parameters["properties"]["order_id"]["type"] == "string"
    assert lookup.description.startswith("Where an order is")
    assert lookup.triggers == (SlashCommand("orders__lookup_order"),)


async def test_a_skill_calls_its_tool(orders: McpConnection) -> None:
    (lookup,) = await connect_skills(orders, only=["lookup_order"])

    result = await SkillRunner().run(lookup, CONTEXT, {"order_id": "a-1001"})

    assert result.ok
    assert result.data == {
        "order_id": "A-1001",
        "status": "shipped",
        "carrier": "DHL",
        "eta": "2026-12-02",
    }
    assert '"status": "shipped"' in result.text


async def test_slash_command_text_goes_to_the_one_string_argument(orders: McpConnection) -> None:
    (lookup,) = await connect_skills(orders, only=["lookup_order"])
    command = SlashCommand(lookup.name)

    assert lookup.arguments(Intent(lookup.name, command, "A-1002")) == {"order_id": "A-1002"}
    as_json = Intent(lookup.name, command, '{"order_id": "A-1"}')
    assert lookup.arguments(as_json) == {"order_id": "A-1"}


async def test_the_tools_own_failure_is_an_error_result(orders: McpConnection) -> None:
    (lookup,) = await connect_skills(orders, only=["lookup_order"])

    result = await SkillRunner().run(lookup, CONTEXT, {"order_id": "Z-9"})

    assert result.error == "Error executing tool lookup_order: no order 'Z-9'"


async def test_arguments_that_break_the_tool_schema_never_reach_the_server(
    orders: McpConnection,
) -> None:
    (lookup,) = await connect_skills(orders, only=["lookup_order"])

    result = await SkillRunner().run(lookup, CONTEXT, {})

    assert result.error is not None
    assert "order_id" in result.error


async def test_a_hung_tool_times_out_and_the_connection_stays() -> None:
    connection = McpConnection(order_target(call_timeout_s=0.5), backoff=Backoff(0.0, 0.0))
    try:
        skills = {s.name: s for s in await connect_skills(connection)}
        with capture_logs() as logs:
            result = await SkillRunner().run(
                skills["orders__slow_echo"], CONTEXT, {"text": "hi", "seconds": 2}
            )
        assert result.error == "MCP server 'orders' did not answer slow_echo within 0.5 s"
        assert any(e["event"] == "mcp tool failed" for e in logs)

        again = await SkillRunner().run(
            skills["orders__lookup_order"], CONTEXT, {"order_id": "A-1002"}
        )
        assert again.data["status"] == "packing"
    finally:
        await connection.close()


async def test_a_server_that_dies_is_reported_then_restarted_on_next_use(
    orders: McpConnection,
) -> None:
    skills = {s.name: s for s in await connect_skills(orders)}

    with capture_logs() as logs:
        died = await SkillRunner().run(skills["orders__crash"], CONTEXT, {})
    assert died.error == "MCP server 'orders' went away during crash"
    assert any(e["event"] == "mcp server lost" for e in logs)
    assert not orders.connected

    back = await SkillRunner().run(skills["orders__lookup_order"], CONTEXT, {"order_id": "A-1001"})
    assert back.ok
    assert back.data["status"] == "shipped"
    assert orders.connected


async def test_a_server_that_never_starts_fails_fast_then_retries_after_backoff(
    clock: object,
) -> None:
    # A command that exits at once: the stdio handshake never completes.
    target = order_target(command=sys.executable, args=("-c", "raise SystemExit(1)"))
    backoff = Backoff(initial_s=10.0, max_s=60.0)
    connection = McpConnection(target, backoff=backoff, clock=clock)  # type: ignore[arg-type]
    try:
        with capture_logs() as logs:
            (declared,) = await connect_all([(connection, ["lookup_order"])])
        assert declared.name == "orders__lookup_order"  # declared in settings: still a skill
        assert any(e["event"] == "mcp server did not start" for e in logs)
        assert backoff.failures == 1

        result = await SkillRunner().run(declared, CONTEXT, {"order_id": "A-1001"})
        assert result.error is not None
        assert "unavailable" in result.error
        assert "next try in 10 s" in result.error
        assert backoff.failures == 1  # inside the backoff: no new attempt

        clock.now += 11  # type: ignore[attr-defined]
        with pytest.raises(McpUnavailable):
            await connection.call("lookup_order", {"order_id": "A-1001"})
        assert backoff.failures == 2  # tried again, failed again: the wait doubles
        assert backoff.retry_at == clock.now + 20  # type: ignore[attr-defined]
    finally:
        await connection.close()


async def test_a_server_without_declared_tools_that_never_starts_gives_no_skills() -> None:
    target = order_target(command="/nonexistent/mcp-server")
    connection = McpConnection(target)
    try:
        assert await connect_all([(connection, None)]) == []
    finally:
        await connection.close()


async def test_a_server_that_hangs_at_start_times_out_and_is_stopped() -> None:
    # It starts but never answers the handshake.
    silent = ("-c", "import time; time.sleep(60)")
    target = order_target(command=sys.executable, args=silent, connect_timeout_s=1.0)
    connection = McpConnection(target)
    started = time.monotonic()
    try:
        with capture_logs() as logs:
            assert await connect_all([(connection, None)]) == []
        assert time.monotonic() - started < 5  # the timeout, not the process's lifetime
        assert connection.last_error is not None
        assert "did not start within 1 s" in connection.last_error
        assert any(e["event"] == "mcp server unavailable" for e in logs)
    finally:
        await connection.close()
