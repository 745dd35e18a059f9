"""Streamed tool calls put back together.

OpenAI streams a tool call in pieces: each piece names the call by ``index``; the first one
carries the call's ``id`` and function ``name``, and the JSON ``arguments`` arrive as text
fragments to be concatenated. Several calls may be streamed side by side. Servers differ in
small ways (some repeat the id or the name on every piece, some send no id at all), so a
repeat is accepted and a missing id is made up; a call without a name is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from personae.core.types import ChatMessage, ChatRequest, Role, ToolCall, ToolCallDelta


class ToolCallError(ValueError):
    """The pieces do not make whole tool calls (the backend broke the protocol)."""


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAssembler:
    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, deltas: Iterable[ToolCallDelta]) -> None:
        """Take pieces in arrival order; raises ``ToolCallError`` for one that contradicts
        what came before."""
        for delta in deltas:
            if delta.index < 0:
                raise ToolCallError(f"tool call index {delta.index} is negative")
            partial = self._calls.setdefault(delta.index, _Partial())
            if delta.id:
                if partial.id and partial.id != delta.id:
                    raise ToolCallError(
                        f"tool call {delta.index} changed its id from {partial.id!r} "
                        f"to {delta.id!r}"
                    )
                partial.id = delta.id
            if delta.name and delta.name != partial.name:
                # A repeated name is the same name; anything else continues it.
                partial.name += delta.name
            if delta.arguments:
                partial.arguments.append(delta.arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        """The whole calls, in index order; raises ``ToolCallError`` for one with no name."""
        whole: list[ToolCall] = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            if not partial.name:
                raise ToolCallError(f"tool call {index} has no function name")
            call_id = partial.id or f"call_{index}"
            whole.append(ToolCall(call_id, partial.name, "".join(partial.arguments)))
        return tuple(whole)


def without_tools(request: ChatRequest) -> ChatRequest:
    """``request`` for a model that cannot call tools (a fallback in a chain whose primary
    can): no tools offered, the calls made so far dropped, and their results kept as system
    notes, as stage-1 skill results are, so the answer can still use them."""
    if not request.tools and not any(m.tool_calls or m.role is Role.TOOL for m in request.messages):
        return request
    messages: list[ChatMessage] = []
    for message in request.messages:
        if message.role is Role.TOOL:
            note = f"[skill {message.name or 'tool'} result: {message.content}]"
            messages.append(ChatMessage(Role.SYSTEM, note))
        elif message.tool_calls:
            if message.content.strip():
                messages.append(replace(message, tool_calls=()))
        else:
            messages.append(message)
    return replace(request, messages=tuple(messages), tools=(), tool_choice="auto")
