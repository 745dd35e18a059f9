"""Another MCP server's tools as skills, registered through the ``register_skills`` hook like
the built-ins, so characters allow-list them by name like any skill.

A tool ``lookup_order`` of the server ``shop`` is the skill ``shop__lookup_order``: the
alphabet both skill names and OpenAI tool names accept (``^[a-zA-Z0-9_-]{1,64}$``), with a
separator no server name contains. Its arguments' JSON-Schema is the tool's ``inputSchema``; a
slash command ``/shop__lookup_order A-1001`` gives the text to the tool's one string argument
(or takes a JSON object).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

import structlog
from mcp_types import CallToolResult, TextContent, Tool

from personae.core.skills import Intent, Skill, SkillContext, SkillResult, SlashCommand
from personae.mcp.client import McpConnection
from personae.mcp.errors import McpTimeout, McpUnavailable
from personae.plugins.specs import RegisterSkill, hookimpl

log = structlog.get_logger(__name__)

SEPARATOR = "__"
MAX_NAME = 64
MAX_DESCRIPTION = 1024
OPEN_SCHEMA: Mapping[str, Any] = {"type": "object"}


def skill_name(server: str, tool: str) -> str:
    """``<server>__<tool>``, lower case, other characters as ``_``, at most 64 characters."""
    return re.sub(r"[^a-z0-9_-]", "_", f"{server}{SEPARATOR}{tool}".lower())[:MAX_NAME]


class McpToolSkill(Skill):
    """A skill whose ``run`` calls one tool of an MCP server.

    Skills declare name, description and schema on the class (``ClassVar``), so each tool
    gets a small subclass (``tool_skill``) rather than instance attributes."""

    tool: ClassVar[str]

    def __init__(self, connection: McpConnection) -> None:
        self.connection = connection

    def arguments(self, intent: Intent) -> dict[str, Any]:
        """A JSON object as given; otherwise the text, for the tool's one string argument."""
        text = intent.text.strip()
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
        single = _single_string_argument(self.parameters)
        if single is not None:
            return {single: text} if text else {}
        return {"text": text} if text else {}

    async def run(self, context: SkillContext, args: Mapping[str, Any]) -> SkillResult:
        try:
            result = await self.connection.call(self.tool, args)
        except (McpUnavailable, McpTimeout) as exc:
            log.warning("mcp tool failed", skill=self.name, error=str(exc))
            return SkillResult(error=str(exc))
        return _result(result)


def tool_skill(connection: McpConnection, tool: Tool) -> McpToolSkill:
    """The skill for ``tool`` of the server behind ``connection``."""
    name = skill_name(connection.name, tool.name)
    schema = tool.input_schema if tool.input_schema.get("type") == "object" else OPEN_SCHEMA
    description = (tool.description or tool.title or tool.name)[:MAX_DESCRIPTION]
    return _skill_class(name, tool.name, description, schema)(connection)


def declared_skill(connection: McpConnection, tool: str) -> McpToolSkill:
    """A tool named in settings whose server was down at start-up: the server checks its
    arguments when it is back."""
    name = skill_name(connection.name, tool)
    description = f"{tool} (MCP server {connection.name}; its description when it answers)"
    return _skill_class(name, tool, description, OPEN_SCHEMA)(connection)


def _skill_class(
    name: str, tool: str, description: str, schema: Mapping[str, Any]
) -> type[McpToolSkill]:
    attributes = {
        "name": name,
        "version": "mcp",
        "description": description,
        "parameters": dict(schema),
        "triggers": (SlashCommand(name),),
        "tool": tool,
    }
    return cast(type[McpToolSkill], type(f"McpTool[{name}]", (McpToolSkill,), attributes))


async def connect_skills(
    connection: McpConnection, only: Sequence[str] | None = None
) -> list[McpToolSkill]:
    """Connect and make a skill of each tool (of those in ``only``, when given). A server
    that does not start is logged; its ``only`` tools are still registered, to work once
    it answers (reconnects happen on use, with backoff)."""
    try:
        tools = await connection.tools()
    except (McpUnavailable, McpTimeout) as exc:
        log.error("mcp server did not start", server=connection.name, error=str(exc))
        return [declared_skill(connection, tool) for tool in only or ()]
    wanted = {tool.name: tool for tool in tools if only is None or tool.name in only}
    for missing in sorted(set(only or ()) - set(wanted)):
        log.warning("mcp tool not offered by its server", server=connection.name, tool=missing)
    skills = [tool_skill(connection, tool) for tool in wanted.values()]
    log.info("mcp tools ready", server=connection.name, skills=[s.name for s in skills])
    return skills


async def connect_all(
    connections: Sequence[tuple[McpConnection, Sequence[str] | None]],
) -> list[McpToolSkill]:
    """Every server's skills, servers connected at once; a name taken twice keeps the first."""
    found = await asyncio.gather(*(connect_skills(c, only) for c, only in connections))
    skills: dict[str, McpToolSkill] = {}
    for skill in (s for batch in found for s in batch):
        if skill.name in skills:
            log.warning("mcp skill name taken twice, second one left out", skill=skill.name)
            continue
        skills[skill.name] = skill
    return list(skills.values())


class McpSkillsPlugin:
    """Registers the MCP tools' skills through the plugin hook, as any plugin does."""

    def __init__(self, skills: Sequence[Skill]) -> None:
        self.skills = list(skills)

    @hookimpl
    def register_skills(self, register: RegisterSkill) -> None:
        for skill in self.skills:
            register(skill)


def _single_string_argument(schema: Mapping[str, Any]) -> str | None:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return None
    required = [p for p in schema.get("required", ()) if p in properties]
    candidates = required if len(required) == 1 else list(properties)
    if len(candidates) != 1:
        return None
    spec = properties[candidates[0]]
    return candidates[0] if isinstance(spec, Mapping) and spec.get("type") == "string" else None


def _result(result: CallToolResult) -> SkillResult:
    """The tool's text for the user, its structured content (else its text) for the prompt;
    a tool's own failure (``isError``) is an error result with its message."""
    text = "\n".join(b.text for b in result.content if isinstance(b, TextContent)).strip()
    if result.is_error:
        return SkillResult(error=text or "the tool failed")
    structured = result.structured_content
    data: dict[str, Any] = {}
    if isinstance(structured, Mapping):
        data = dict(structured)
    elif structured is not None:
        data = {"result": structured}
    return SkillResult(text=text, data=data)
