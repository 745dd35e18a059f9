"""The OpenAI chat-completions wire format, both ways, read straight from the JSON.

Outgoing: messages (tool calls and tool results included) and the tools offered. Incoming:
one streamed ``chat.completion.chunk`` (``read_chunk``) or one whole ``chat.completion``
(``read_completion``), each checked field by field as it is read: anything that is not what
the format says raises ``TypeError``, ``KeyError`` or ``ValueError``, which the backend turns
into a ``BackendProtocolError``; an error event inside a stream raises ``StreamFault``.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from personae.core.types import (
    ChatMessage,
    ModelChunk,
    Role,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)

# OpenAI rejects participant names containing whitespace or any of <|\/>.
_NAME_FORBIDDEN = re.compile(r"[\s<|\\/>]+")
_T = TypeVar("_T")


class StreamFault(Exception):
    """The server reported an error inside an otherwise healthy stream."""


# --- outgoing ---------------------------------------------------------------------------------


def wire_message(message: ChatMessage) -> dict[str, Any]:
    if message.role is Role.TOOL:
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    wire: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.name:
        wire["name"] = _NAME_FORBIDDEN.sub("_", message.name)
    if message.tool_calls:
        wire["tool_calls"] = [wire_call(call) for call in message.tool_calls]
        wire["content"] = message.content or None  # OpenAI's own form of "no words"
    return wire


def wire_call(call: ToolCall) -> dict[str, Any]:
    function = {"name": call.name, "arguments": call.arguments}
    return {"id": call.id, "type": "function", "function": function}


def wire_tool(tool: ToolSpec) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


# --- incoming ---------------------------------------------------------------------------------


def read_chunk(chunk: Any) -> ModelChunk:
    """Text, tool-call pieces, finish reason and usage of one ``chat.completion.chunk``."""
    if not isinstance(chunk, dict):
        raise TypeError(f"an event is {type(chunk).__name__}, not an object")
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise StreamFault(str(message))
    usage = _usage(chunk.get("usage"))
    choice = _first_choice(chunk["choices"])
    if choice is None:
        return ModelChunk(usage=usage)
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict):
        raise TypeError(f"delta is {type(delta).__name__}")
    return ModelChunk(
        text=_optional(delta, "content", str) or "",
        finish_reason=_optional(choice, "finish_reason", str),
        usage=usage,
        tool_calls=tuple(_delta(piece) for piece in _list(delta, "tool_calls")),
    )


def read_completion(body: Any) -> ModelChunk:
    """A whole ``chat.completion`` as one chunk: its text, its tool calls (each a single
    piece), finish reason and usage."""
    if not isinstance(body, dict):
        raise TypeError(f"the answer is {type(body).__name__}, not an object")
    if "error" in body:
        raise StreamFault(str(body["error"]))
    choice = _first_choice(body["choices"])
    if choice is None:
        raise ValueError("the completion has no choice 0")
    message = choice["message"]
    if not isinstance(message, dict):
        raise TypeError(f"message is {type(message).__name__}")
    calls = tuple(
        _whole_call(index, call) for index, call in enumerate(_list(message, "tool_calls"))
    )
    return ModelChunk(
        text=_optional(message, "content", str) or "",
        finish_reason=_optional(choice, "finish_reason", str),
        usage=_usage(body.get("usage")),
        tool_calls=calls,
    )


def _first_choice(choices: Any) -> dict[str, Any] | None:
    if not isinstance(choices, list):
        raise TypeError(f"choices is {type(choices).__name__}")
    for choice in choices:
        if not isinstance(choice, dict):
            raise TypeError(f"a choice is {type(choice).__name__}")
        if choice.get("index", 0) == 0:
            return choice
    return None


def _usage(counted: Any) -> Usage | None:
    if counted is None:
        return None
    return Usage(int(counted["prompt_tokens"]), int(counted["completion_tokens"]))


def _delta(piece: Any) -> ToolCallDelta:
    if not isinstance(piece, dict):
        raise TypeError(f"a tool call is {type(piece).__name__}")
    index = piece["index"]
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"a tool call's index is {type(index).__name__}")
    function = piece.get("function") or {}
    if not isinstance(function, dict):
        raise TypeError(f"a tool call's function is {type(function).__name__}")
    return ToolCallDelta(
        index=index,
        id=_optional(piece, "id", str),
        name=_optional(function, "name", str),
        arguments=_optional(function, "arguments", str) or "",
    )


def _whole_call(index: int, call: Any) -> ToolCallDelta:
    if not isinstance(call, dict):
        raise TypeError(f"a tool call is {type(call).__name__}")
    function = call["function"]
    if not isinstance(function, dict):
        raise TypeError(f"a tool call's function is {type(function).__name__}")
    return ToolCallDelta(
        index=index,
        id=_optional(call, "id", str),
        name=_optional(function, "name", str),
        arguments=_optional(function, "arguments", str) or "",
    )


def _optional(holder: dict[str, Any], key: str, kind: type[_T]) -> _T | None:
    value = holder.get(key)
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{key} is {type(value).__name__}, not {kind.__name__}")
    return value


def _list(holder: dict[str, Any], key: str) -> list[Any]:
    value = holder.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"{key} is {type(value).__name__}, not a list")
    return value
