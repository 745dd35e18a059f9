"""Scripted replies: a test says what the fake answers next, tool calls included.

    fake.enqueue(
        Scripted(tool_calls=(ScriptedCall("dice", {"expression": "2d6"}),)),  # call a tool
        Scripted(text="The dice say: {tool_results}"),                         # then answer
    )

Each chat request takes the next scripted reply, whatever it asks (faults and stamps do not
apply); with none left the fake answers with stamps as usual. In ``text``,
``{tool_results}`` becomes the contents of the request's ``tool`` messages, so an answer can
show what the skills returned. Streamed, the text goes word by word at the configured pace
and each call as OpenAI streams one: a first piece with id, type and name, then the
arguments in ``pieces`` fragments, the calls' pieces interleaved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOOL_RESULTS = "{tool_results}"


@dataclass(frozen=True)
class ScriptedCall:
    """A tool call; ``arguments`` as JSON text (sent as given, valid or not) or a mapping."""

    name: str
    arguments: str | Mapping[str, Any] = "{}"

    @property
    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Scripted:
    text: str = ""
    tool_calls: tuple[ScriptedCall, ...] = ()
    pieces: int = 3  # fragments of each call's arguments

    def __post_init__(self) -> None:
        if self.pieces < 1:
            raise ValueError("pieces must be >= 1")

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    def words(self, body: Mapping[str, Any]) -> list[str]:
        """The text, ``{tool_results}`` filled in, as tokens that keep their whitespace."""
        text = self.text.replace(TOOL_RESULTS, tool_results(body))
        return re.findall(r"\s*\S+", text)

    def call_ids(self, request_number: int) -> list[str]:
        return [f"call_{request_number}_{index}" for index in range(len(self.tool_calls))]

    def call_pieces(self, request_number: int) -> list[list[dict[str, Any]]]:
        """The streamed ``tool_calls`` of each event, in order."""
        streams: list[list[dict[str, Any]]] = []
        ids = self.call_ids(request_number)
        for index, (call, call_id) in enumerate(zip(self.tool_calls, ids, strict=True)):
            arguments = call.arguments_text
            size = max(1, -(-len(arguments) // self.pieces))
            head = {"name": call.name, "arguments": ""}
            pieces = [{"index": index, "id": call_id, "type": "function", "function": head}]
            pieces += [
                {"index": index, "function": {"arguments": arguments[at : at + size]}}
                for at in range(0, len(arguments), size)
            ]
            streams.append(pieces)
        longest = max((len(pieces) for pieces in streams), default=0)
        return [[p[step] for p in streams if step < len(p)] for step in range(longest)]

    def message(self, body: Mapping[str, Any], request_number: int) -> dict[str, Any]:
        """The whole assistant message of a non-streamed completion."""
        text = "".join(self.words(body))
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if self.tool_calls:
            ids = self.call_ids(request_number)
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_text},
                }
                for call, call_id in zip(self.tool_calls, ids, strict=True)
            ]
        return message


def tool_results(body: Mapping[str, Any]) -> str:
    """The contents of the request's ``tool`` messages, one after another."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    return " ".join(
        str(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") == "tool" and m.get("content") is not None
    )
