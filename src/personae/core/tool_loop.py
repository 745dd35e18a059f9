"""Stage 2 of intent detection: the model calls skills as OpenAI-style tools.

    model asks for tool calls -> run the skills (``SkillRunner``: timeout, concurrency, errors
    isolated) -> their results go back as ``tool`` messages -> ask again

at most ``max_rounds`` times; then the model is asked once more with ``tool_choice: none``
and must answer in words. Whatever text the model writes, in any round, streams on to the
user as it arrives; the final chunk carries the last round's finish reason and the usage of
all rounds together.

A call goes wrong in one of three ways, and the model hears of each as the call's result:
a tool it was not offered (the result names the ones it was), arguments that are not a JSON
object or break the skill's schema (the first time, the problem and the schema, so it can
call again; the second time, a failure, and the skill is withdrawn for the rest of the
reply), or the skill itself failing (its error). A model that still calls tools after it was
told to answer, with nothing to say, is a ``BackendProtocolError``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from personae.core.characters import Character
from personae.core.ports import ChatModel
from personae.core.schema import schema_errors
from personae.core.skills import Skill, SkillContext, SkillResult, SkillRunner
from personae.core.tool_calls import ToolCallAssembler, ToolCallError
from personae.core.types import (
    ChatMessage,
    ChatRequest,
    ModelChunk,
    Role,
    ToolCall,
    ToolSpec,
    Usage,
)
from personae.errors import BackendProtocolError

log = structlog.get_logger(__name__)

Outbound = Callable[[Sequence[ChatMessage]], tuple[ChatMessage, ...]]
SkillCalled = Callable[[str, bool], None]


def _as_is(messages: Sequence[ChatMessage]) -> tuple[ChatMessage, ...]:
    return tuple(messages)


def _same(text: str) -> str:
    return text


@dataclass
class _Reply:
    """One turn's tool loop so far."""

    messages: list[ChatMessage]
    refused: set[str] = field(default_factory=set)  # skills whose arguments failed once
    withdrawn: set[str] = field(default_factory=set)  # skills not offered any more
    usage: Usage | None = None
    spoke: bool = False  # text has gone to the user

    def count(self, usage: Usage | None) -> None:
        if usage is not None:
            before = self.usage or Usage(0, 0)
            self.usage = Usage(
                before.prompt_tokens + usage.prompt_tokens,
                before.completion_tokens + usage.completion_tokens,
            )


@dataclass
class _Round:
    """What one round's stream said besides its text."""

    assembler: ToolCallAssembler = field(default_factory=ToolCallAssembler)
    parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None


class ToolLoop:
    """``skills`` are all the skills there are; a turn offers the character's (``offer``)."""

    def __init__(
        self,
        skills: Mapping[str, Skill],
        runner: SkillRunner,
        *,
        max_rounds: int = 3,
        on_call: SkillCalled | None = None,
    ) -> None:
        if max_rounds < 0:
            raise ValueError("max_rounds must be >= 0")
        self._skills = skills
        self._runner = runner
        self.max_rounds = max_rounds
        self._on_call = on_call

    def offer(self, character: Character, model: ChatModel) -> tuple[ToolSpec, ...]:
        """The tools a turn offers: the character's skills, if the model can call tools."""
        if not model.supports_tools or self.max_rounds == 0:
            return ()
        return tuple(
            ToolSpec(skill.name, skill.description, skill.parameters)
            for name in character.skills
            if (skill := self._skills.get(name)) is not None
        )

    def stream(
        self,
        model: ChatModel,
        request: ChatRequest,
        context: SkillContext,
        *,
        outbound: Outbound = _as_is,
        restore: Callable[[str], str] = _same,
    ) -> AsyncGenerator[ModelChunk, None]:
        """The model's reply to ``request``, tool rounds included. ``outbound`` prepares the
        messages this loop adds for the backend (PII tokens); ``restore`` turns the model's
        arguments back into what the user wrote."""
        if not request.tools:  # the model's own stream: no layer of ours on every chunk
            return model.stream(request)
        return self._rounds(model, request, context, outbound=outbound, restore=restore)

    async def _rounds(
        self,
        model: ChatModel,
        request: ChatRequest,
        context: SkillContext,
        *,
        outbound: Outbound,
        restore: Callable[[str], str],
    ) -> AsyncGenerator[ModelChunk, None]:
        everything = {tool.name for tool in request.tools}
        reply = _Reply(list(request.messages))
        rounds = 0
        while True:
            final = rounds >= self.max_rounds or reply.withdrawn >= everything
            offered = tuple(t for t in request.tools if t.name not in reply.withdrawn)
            asked = replace(
                request,
                messages=tuple(reply.messages),
                tools=request.tools if final else offered,  # the model still reads old calls
                tool_choice="none" if final else request.tool_choice,
            )
            heard = _Round()
            async with aclosing(self._ask(model, asked, reply, heard)) as texts:
                async for text_chunk in texts:
                    yield text_chunk
            calls = _whole(heard.assembler, model)
            text = "".join(heard.parts)
            if calls and final:
                if not text.strip():
                    raise BackendProtocolError(
                        f"the model still asked for tools after {rounds} round(s) of them",
                        backend=model.name,
                    )
                log.warning("tool calls after the last round ignored", rounds=rounds)
            if not calls or final:
                yield ModelChunk(finish_reason=heard.finish_reason or "stop", usage=reply.usage)
                return
            rounds += 1
            offered_names = {tool.name for tool in offered}
            answers = await self._answer(calls, offered_names, context, reply, restore)
            reply.messages.append(ChatMessage(Role.ASSISTANT, text, tool_calls=calls))
            reply.messages.extend(outbound(answers))

    @staticmethod
    async def _ask(
        model: ChatModel, asked: ChatRequest, reply: _Reply, heard: _Round
    ) -> AsyncGenerator[ModelChunk, None]:
        """One round: its text on to the user as it comes, its tool calls, finish reason and
        usage into ``heard`` and ``reply``."""
        async with aclosing(model.stream(asked)) as chunks:
            async for chunk in chunks:
                if chunk.tool_calls:
                    _feed(heard.assembler, chunk, model)
                if chunk.text:
                    shown = chunk.text
                    if reply.spoke and not heard.parts:  # a new round's words: a new paragraph
                        shown = "\n\n" + shown.lstrip()
                    heard.parts.append(chunk.text)
                    reply.spoke = True
                    yield ModelChunk(text=shown)
                reply.count(chunk.usage)
                heard.finish_reason = chunk.finish_reason or heard.finish_reason

    async def _answer(
        self,
        calls: Sequence[ToolCall],
        offered: set[str],
        context: SkillContext,
        reply: _Reply,
        restore: Callable[[str], str],
    ) -> list[ChatMessage]:
        """One ``tool`` message per call, in order. Arguments are checked first, one call
        after another (a second bad call to a skill withdraws it), then the skills run
        side by side."""
        checked = [self._check(call, offered, reply, restore) for call in calls]
        results = await asyncio.gather(
            *(
                self._run(call, verdict, context)
                for call, verdict in zip(calls, checked, strict=True)
            )
        )
        return [
            ChatMessage(Role.TOOL, _json(result), name=call.name, tool_call_id=call.id)
            for call, result in zip(calls, results, strict=True)
        ]

    def _check(
        self, call: ToolCall, offered: set[str], reply: _Reply, restore: Callable[[str], str]
    ) -> dict[str, Any] | tuple[Skill, dict[str, Any]]:
        """The skill and its arguments, or the result that tells the model what was wrong."""
        skill = self._skills.get(call.name) if call.name in offered else None
        if skill is None:
            log.info("tool call to an unknown tool", tool=call.name)
            names = ", ".join(sorted(offered)) or "none"
            return {"error": f"there is no tool {call.name!r}; the tools are: {names}"}
        try:
            return skill, parse_arguments(restore(call.arguments), skill.parameters)
        except ValueError as exc:
            problem = str(exc)
        log.info("tool call with bad arguments", skill=skill.name, error=problem)
        if skill.name not in reply.refused:
            reply.refused.add(skill.name)
            return {
                "error": f"invalid arguments: {problem}",
                "parameters": dict(skill.parameters),
                "hint": "call the tool again with arguments that match the parameters",
            }
        reply.withdrawn.add(skill.name)
        self._called(skill.name, ok=False)
        return {
            "error": f"{skill.name} failed: invalid arguments again ({problem}); it is not "
            "available for the rest of this reply, answer without it",
        }

    async def _run(
        self,
        call: ToolCall,
        verdict: dict[str, Any] | tuple[Skill, dict[str, Any]],
        context: SkillContext,
    ) -> dict[str, Any]:
        if isinstance(verdict, dict):
            return verdict
        skill, args = verdict
        result = await self._runner.run(skill, context, args)
        self._called(skill.name, ok=result.ok)
        return _result(result)

    def _called(self, skill: str, *, ok: bool) -> None:
        if self._on_call is not None:
            try:
                self._on_call(skill, ok)
            except Exception:  # a metrics bug must not end the turn
                log.exception("skill observer failed")


def parse_arguments(text: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call's arguments as an object that fits ``schema``; ``ValueError`` says why
    not. No text at all is no arguments (models send that for tools without parameters)."""
    try:
        args = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ValueError(f"the arguments are not JSON ({exc})") from None
    if not isinstance(args, dict):
        raise ValueError(f"the arguments are a JSON {type(args).__name__}, not an object")
    problems = schema_errors(args, schema)
    if problems:
        raise ValueError("; ".join(problems))
    return args


def _feed(assembler: ToolCallAssembler, chunk: ModelChunk, model: ChatModel) -> None:
    try:
        assembler.feed(chunk.tool_calls)
    except ToolCallError as exc:
        raise BackendProtocolError(str(exc), backend=model.name) from exc


def _whole(assembler: ToolCallAssembler, model: ChatModel) -> tuple[ToolCall, ...]:
    try:
        return assembler.calls()
    except ToolCallError as exc:
        raise BackendProtocolError(str(exc), backend=model.name) from exc


def _result(result: SkillResult) -> dict[str, Any]:
    if not result.ok:
        return {"error": result.error}
    answer: dict[str, Any] = {"result": result.text}
    if result.data:
        answer["data"] = dict(result.data)
    return answer


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
