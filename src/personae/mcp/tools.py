"""Personae's own MCP tools: what each one does, through the same ports as any transport.

- ``chat``: a character answers a message, a turn through ``ChatService`` like any other
  (channel ``mcp``);
- ``list_characters``: who there is to talk to;
- ``memory_search`` / ``memory_read``: what long-term memory holds of the caller, only in its
  private partitions (``core.memory.scope.private_partitions``), as ``GET /api/memory``.

Who the caller is comes from the transport (the API key of the HTTP request, or the one the
stdio server was started with); whom it acts for follows the HTTP API's rule (``acting_for``:
a user only for itself, a service for its tenant's users, an admin for anyone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from personae.core.admission import Admission
from personae.core.catalog import CharacterCatalog
from personae.core.events import MessageAck, MessageDone
from personae.core.memory.items import MemoryItem, Partition
from personae.core.memory.scope import private_partitions
from personae.core.ports import Authenticator, ConversationStore, MemoryStore, RequestGate
from personae.core.schema import schema_errors
from personae.core.service import ChatService
from personae.core.types import Caller, InboundMessage, Principal
from personae.errors import InvalidInput, NotFound

ActingFor = Callable[[Principal, str | None], str]  # the end user a caller may act for
NEW_CONVERSATION = "new"
MAX_HITS = 20
MAX_ITEMS = 200
CHANNEL = "mcp"


@dataclass(frozen=True, slots=True)
class McpPorts:
    """What Personae's MCP tools need of the running server (the composition root's)."""

    service: ChatService
    catalog: CharacterCatalog
    store: ConversationStore
    authenticator: Authenticator
    acting_for: ActingFor
    admission: Admission  # the process's bounds on turns, shared with every transport
    memory: MemoryStore | None = None  # None: memory is off
    gate: RequestGate | None = None  # None: no rate limits


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    name: str
    description: str
    parameters: Mapping[str, Any]


_USER = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "description": "The end user to act for (service and admin keys); default: the caller.",
}
_CHARACTER = {"type": "string", "minLength": 1, "maxLength": 64}

TOOLS = (
    ToolDefinition(
        "chat",
        "Send a message to a character and get its reply. The conversation continues the "
        "caller's latest with that character unless one is named ('new' starts one).",
        {
            "type": "object",
            "properties": {
                "character": {**_CHARACTER, "description": "The character's id."},
                "message": {"type": "string", "minLength": 1},
                "conversation": {"type": "string", "minLength": 1, "maxLength": 64},
                "user": _USER,
            },
            "required": ["character", "message"],
            "additionalProperties": False,
        },
    ),
    ToolDefinition(
        "list_characters",
        "The characters there are to chat with: id, name and description.",
        {"type": "object", "properties": {}, "additionalProperties": False},
    ),
    ToolDefinition(
        "memory_search",
        "Search what the characters remember of the user (full text), best first.",
        {
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "maxLength": 1000},
                "character": {**_CHARACTER, "description": "Only this character's memory."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_HITS},
                "user": _USER,
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    ),
    ToolDefinition(
        "memory_read",
        "Read remembered items of the user: the ones named by id, else the newest.",
        {
            "type": "object",
            "properties": {
                "ids": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_ITEMS},
                "character": {**_CHARACTER, "description": "Only this character's memory."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_ITEMS},
                "user": _USER,
            },
            "additionalProperties": False,
        },
    ),
)
TOOLS_BY_NAME = {tool.name: tool for tool in TOOLS}


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    text: str
    data: Mapping[str, Any]


class PersonaeTools:
    """Runs one tool call for an authenticated caller; raises ``PersonaeError`` for anything
    the caller should hear about (the transport turns it into an error result)."""

    def __init__(self, ports: McpPorts) -> None:
        self.ports = ports

    async def call(
        self, name: str, args: Mapping[str, Any], principal: Principal, client: str | None
    ) -> ToolAnswer:
        tool = TOOLS_BY_NAME.get(name)
        if tool is None:
            raise NotFound(f"there is no tool {name!r}; the tools are: {', '.join(TOOLS_BY_NAME)}")
        problems = schema_errors(dict(args), tool.parameters)
        if problems:
            raise InvalidInput("invalid arguments: " + "; ".join(problems))
        user = args.get("user")
        caller = Caller(principal, self.ports.acting_for(principal, user), client)
        if self.ports.gate is not None:
            await self.ports.gate.admit(caller)  # rate limits, as every HTTP request
        if name == "chat":
            return await self._chat(caller, args)
        if name == "list_characters":
            return self._characters()
        if name == "memory_search":
            return await self._search(caller, args)
        return await self._read(caller, args)

    async def _chat(self, caller: Caller, args: Mapping[str, Any]) -> ToolAnswer:
        conversation = args.get("conversation")
        inbound = InboundMessage(
            user=caller.user,
            character_id=args["character"],
            text=args["message"],
            conversation_id=None if conversation == NEW_CONVERSATION else conversation,
            new_conversation=conversation == NEW_CONVERSATION,
            channel=CHANNEL,
        )
        self.ports.service.validate(inbound)  # before the slot: a bad call takes none
        conversation_id = ""
        done: MessageDone | None = None
        # Past the bounds: Overloaded, a tool error that says to retry later.
        async with (
            self.ports.admission.slot(),
            aclosing(self.ports.service.turn(inbound)) as events,
        ):
            async for event in events:
                if isinstance(event, MessageAck):
                    conversation_id = event.conversation.id
                elif isinstance(event, MessageDone):
                    done = event
        if done is None:
            raise RuntimeError("the turn ended without a reply")
        reply = done.message.content
        data = {
            "character": inbound.character_id,
            "conversation": conversation_id,
            "message_id": done.message.id,
            "reply": reply,
        }
        return ToolAnswer(reply, data)

    def _characters(self) -> ToolAnswer:
        rows = [
            {"id": c.id, "name": c.name, "description": c.summary} for c in self.ports.catalog.all()
        ]
        text = "\n".join(f"{r['id']}: {r['name']}" for r in rows) or "(no characters)"
        return ToolAnswer(text, {"characters": rows})

    async def _partitions(self, caller: Caller, args: Mapping[str, Any]) -> list[Partition]:
        if self.ports.memory is None:
            raise InvalidInput("long-term memory is off on this server")
        return await private_partitions(self.ports.store, caller.user, args.get("character"))

    async def _search(self, caller: Caller, args: Mapping[str, Any]) -> ToolAnswer:
        partitions = await self._partitions(caller, args)
        assert self.ports.memory is not None
        hits = []
        if partitions:
            hits = await self.ports.memory.search(
                partitions,
                text=args["query"],
                limit=int(args.get("limit", 5)),
                now=datetime.now(UTC),
            )
        rows = [{**_item(hit.item), "score": round(hit.score, 6)} for hit in hits]
        return ToolAnswer(_lines(rows), {"hits": rows})

    async def _read(self, caller: Caller, args: Mapping[str, Any]) -> ToolAnswer:
        partitions = await self._partitions(caller, args)
        assert self.ports.memory is not None
        limit = int(args.get("limit", 50))
        ids = args.get("ids")
        items: list[MemoryItem] = []
        if ids is not None:
            if len(ids) > MAX_ITEMS:
                raise InvalidInput(f"at most {MAX_ITEMS} ids at once")
            # Another user's item looks just like one that does not exist.
            items = [i for i in await self.ports.memory.get(ids) if i.partition in partitions]
        else:
            for partition in partitions:
                items += await self.ports.memory.list_items(partition, limit=limit)
            items = sorted(items, key=lambda i: i.created_at, reverse=True)[:limit]
        rows = [_item(item) for item in items]
        return ToolAnswer(_lines(rows), {"items": rows})


def _item(item: MemoryItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "character": item.partition.character_id,
        "text": item.text,
        "kind": item.kind,
        "importance": item.importance,
        "created_at": item.created_at.isoformat(timespec="seconds"),
    }


def _lines(rows: list[dict[str, Any]]) -> str:
    return "\n".join(f"[{r['character']}] {r['text']}" for r in rows) or "(nothing remembered)"
