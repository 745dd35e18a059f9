"""The OpenAI-compatible API: ``/v1/chat/completions`` (SSE and plain) and ``/v1/models``.

A character is a model: its id is the ``model`` name. The server keeps the history, so only the
last (user) message of a request is new; the conversation is the one named by the
``X-Personae-Conversation`` header (``new`` starts one), else the user's latest with the
character. The response carries the conversation id in the same header.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from personae.core.events import MessageAck, MessageDelta, MessageDone, TurnEvent
from personae.core.types import Caller, InboundMessage, Principal, SamplingOverrides
from personae.errors import PersonaeError
from personae.transports.auth import acting_for, principal, self_caller
from personae.transports.errors import body_for
from personae.transports.experiments import tags_declared, variant_asked
from personae.transports.gateway import Gateway, gateway
from personae.transports.openai_models import (
    ChatCompletionRequest,
    ContentChunks,
    chunk_body,
    completion_body,
    sse_data,
)

router = APIRouter(prefix="/v1", tags=["openai"])
CONVERSATION_HEADER = "X-Personae-Conversation"
NEW_CONVERSATION = "new"  # as the header's value: start a new conversation


@router.get("/models")
async def list_models(
    gw: Annotated[Gateway, Depends(gateway)], _: Annotated[Caller, Depends(self_caller)]
) -> dict[str, Any]:
    return {"object": "list", "data": [_model_card(c.id) for c in gw.catalog.all()]}


@router.get("/models/{model_id}")
async def get_model(
    model_id: str,
    gw: Annotated[Gateway, Depends(gateway)],
    _: Annotated[Caller, Depends(self_caller)],
) -> dict[str, Any]:
    return _model_card(gw.catalog.get(model_id).id)


def _model_card(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "personae"}


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    gw: Annotated[Gateway, Depends(gateway)],
    who: Annotated[Principal, Depends(principal)],
    x_personae_conversation: Annotated[str | None, Header()] = None,
) -> JSONResponse | StreamingResponse:
    wants_new = x_personae_conversation == NEW_CONVERSATION
    caller = await acting_for(request, gw, who, body.user)  # role, tenant and rate limits
    inbound = InboundMessage(
        user=caller.user,
        character_id=body.model,
        text=body.new_user_text(),
        conversation_id=None if wants_new else x_personae_conversation or None,
        new_conversation=wants_new,
        sampling=SamplingOverrides(
            max_tokens=body.max_completion_tokens or body.max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
        ),
        role=who.role.value,  # for experiments: targeting, and who may force a variant
        tags=tags_declared(request),
        forced_variant=variant_asked(request),
    )
    # Fail fast, before any turn state exists: a bad request takes no slot.
    gw.service.validate(inbound)
    async with AsyncExitStack() as held:  # what the turn holds until its reply ends
        # The process's bounds, shared with every transport (docs/protocol.md, "Limits and
        # closing"): past them, Overloaded is a 503 with Retry-After, at once or after
        # enqueue_timeout_s in line.
        await held.enter_async_context(gw.admission.slot())
        events = await held.enter_async_context(aclosing(gw.service.turn(inbound)))
        # Run the turn up to its first reply token before answering, so that a backend that is
        # down still gets a proper error status, even for streaming requests.
        head = await _until_first_output(events)
        ack = head[0]
        assert isinstance(ack, MessageAck)
        headers = {CONVERSATION_HEADER: ack.conversation.id}
        completion_id = f"chatcmpl-{ack.message.id.removeprefix('msg_')}"
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            stream = _sse(head, events, completion_id, body.model, include_usage)
            held.push_async_callback(stream.aclose)
            return HeldStreamingResponse(stream, held.pop_all(), headers=headers)
        done = await _until_done(head, events)
    return JSONResponse(
        completion_body(
            completion_id=completion_id,
            created=int(time.time()),
            model=body.model,
            content=done.message.content,
            finish_reason=_finish(done.finish_reason),
            usage=_usage(done),
        ),
        headers=headers,
    )


class HeldStreamingResponse(StreamingResponse):
    """An SSE response that lets go of what its turn holds (the slot, the turn's events) once
    it ends, however it ends: finished, failed, the client gone mid-stream, or gone before the
    first byte so the body was never iterated. A slot kept would be a slot lost for good."""

    def __init__(self, stream: AsyncIterator[str], held: AsyncExitStack, **kwargs: Any) -> None:
        super().__init__(stream, media_type="text/event-stream", **kwargs)
        self._held = held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._held:
            await super().__call__(scope, receive, send)


async def _until_first_output(events: AsyncIterator[TurnEvent]) -> list[TurnEvent]:
    head: list[TurnEvent] = []
    async for event in events:
        head.append(event)
        if isinstance(event, MessageDelta | MessageDone):
            break
    return head


async def _until_done(head: list[TurnEvent], events: AsyncIterator[TurnEvent]) -> MessageDone:
    for event in head:
        if isinstance(event, MessageDone):
            return event
    async for event in events:
        if isinstance(event, MessageDone):
            return event
    raise RuntimeError("the turn ended without MessageDone")


async def _sse(
    head: list[TurnEvent],
    events: AsyncGenerator[TurnEvent, None],
    completion_id: str,
    model: str,
    include_usage: bool,
) -> AsyncGenerator[str, None]:
    created = int(time.time())
    content = ContentChunks(completion_id=completion_id, created=created, model=model)

    def chunk(delta: dict[str, str], finish_reason: str | None = None) -> str:
        body = chunk_body(
            completion_id=completion_id,
            created=created,
            model=model,
            delta=delta,
            finish_reason=finish_reason,
        )
        return sse_data(body)

    async def replayed() -> AsyncIterator[TurnEvent]:
        for event in head:
            yield event
        async for event in events:
            yield event

    yield chunk({"role": "assistant", "content": ""})
    async with aclosing(events):
        try:
            async for event in replayed():
                if isinstance(event, MessageDelta):
                    yield content.event(event.text)
                elif isinstance(event, MessageDone):
                    yield chunk({}, _finish(event.finish_reason))
                    if include_usage:
                        usage_chunk = chunk_body(
                            completion_id=completion_id, created=created, model=model, delta={}
                        )
                        usage_chunk["choices"] = []
                        usage_chunk["usage"] = _usage(event)
                        yield sse_data(usage_chunk)
        except PersonaeError as exc:
            # Headers are gone; the OpenAI streaming convention is an ``error`` event.
            yield sse_data(body_for(exc)[1])
            return
    yield "data: [DONE]\n\n"


def _finish(reason: str) -> str:
    return reason if reason in {"stop", "length", "tool_calls", "content_filter"} else "stop"


def _usage(done: MessageDone) -> dict[str, int]:
    return {
        "prompt_tokens": done.usage.prompt_tokens,
        "completion_tokens": done.usage.completion_tokens,
        "total_tokens": done.usage.total_tokens,
    }
