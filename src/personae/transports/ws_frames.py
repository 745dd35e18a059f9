"""The WebSocket protocol's frames: parsing what clients send, building what the server sends.

Client frames are requests: ``{"type": "req", "id": "...", "method": "...", "params": {...}}``.
The server answers each with exactly one ``{"type": "res", "id", "ok", "result" | "error"}``
and pushes ``{"type": "event", "event", "conversation", "seq", "payload"}``. See
docs/protocol.md.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROTOCOL_VERSION = 1
SUPPORTED = range(1, PROTOCOL_VERSION + 1)


class FrameError(Exception):
    """A frame the server cannot use. ``request_id`` is set when the frame had a usable id, so
    the error can be answered as that request's ``res``."""

    def __init__(self, code: str, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=100_000)


class ProtocolRange(_Params):
    min: int = Field(ge=1)
    max: int = Field(ge=1)


class ConnectParams(_Params):
    token: str | None = None
    protocol: ProtocolRange = ProtocolRange(min=1, max=1)
    device_id: str = Field(default="unknown", min_length=1, max_length=128)
    user: str | None = Field(default=None, min_length=1, max_length=256)
    resume: dict[str, int] = Field(default_factory=dict, max_length=100)
    # Experiments: the variant a tester asks for (honoured for a role in the experiment's
    # force_roles, ignored otherwise) and tags the caller declares for targeting.
    variant: str | None = Field(default=None, min_length=1, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=16)


class SendParams(_Params):
    # No character: the conversation is a group's, and its members answer.
    character: str | None = Field(default=None, min_length=1, max_length=64)
    text: str
    conversation: str | None = Field(default=None, max_length=128)
    new_conversation: bool = False
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)
    speaker: str | None = Field(default=None, min_length=1, max_length=64)  # group: who answers
    greeting: int = Field(default=0, ge=0, le=1000)  # a new conversation's: 0 first, alternates

    @model_validator(mode="after")
    def _names_whom(self) -> SendParams:
        if self.character is None and (self.conversation is None or self.new_conversation):
            raise ValueError("name a character, or the conversation of a group")
        if self.speaker is not None and self.character is not None:
            raise ValueError("speaker is for groups: send it without a character")
        return self


class ConversationParams(_Params):
    conversation: str = Field(min_length=1, max_length=128)


class RegenerateParams(ConversationParams):
    # The reply the client shows as the latest: if the conversation moved on, refused.
    message: str | None = Field(default=None, min_length=1, max_length=128)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)


class EditParams(ConversationParams):
    message: str = Field(min_length=1, max_length=128)  # the last user message, as shown
    text: str
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)


class SwipeParams(ConversationParams):
    message: str = Field(min_length=1, max_length=128)  # the alternative to show


class SubscribeParams(ConversationParams):
    after_seq: int = Field(default=0, ge=0)


class EmptyParams(_Params):
    pass


class FeedbackParams(_Params):
    message_id: str = Field(min_length=1, max_length=128)
    value: Literal["up", "down"]


PARAMS: dict[str, type[_Params]] = {
    "connect": ConnectParams,
    "message.send": SendParams,
    "message.regenerate": RegenerateParams,
    "message.edit": EditParams,
    "message.swipe": SwipeParams,
    "message.cancel": ConversationParams,
    "conversation.subscribe": SubscribeParams,
    "conversation.unsubscribe": ConversationParams,
    "ping": EmptyParams,
    "message.feedback": FeedbackParams,
}


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["req"]
    id: str = Field(min_length=1, max_length=128)
    method: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


def parse_request(text: str) -> tuple[Request, _Params]:
    """Parse one client frame. Raises ``FrameError`` with a stable code for anything wrong."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FrameError("bad_frame", f"the frame is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FrameError("bad_frame", "a frame must be a JSON object")
    request_id = data.get("id") if isinstance(data.get("id"), str) else None
    if data.get("type") != "req":
        raise FrameError("bad_frame", "clients send frames of type 'req'", request_id=request_id)
    try:
        request = Request.model_validate(data)
    except ValidationError as exc:
        raise FrameError("invalid_request", _describe(exc), request_id=request_id) from None
    schema = PARAMS.get(request.method)
    if schema is None:
        raise FrameError(
            "unknown_method", f"unknown method {request.method!r}", request_id=request.id
        )
    try:
        return request, schema.model_validate(request.params)
    except ValidationError as exc:
        raise FrameError("invalid_request", _describe(exc), request_id=request.id) from None


def result_frame(request_id: str, result: dict[str, Any]) -> dict[str, Any]:
    return {"type": "res", "id": request_id, "ok": True, "result": result}


def error_frame(
    request_id: str | None,
    code: str,
    message: str,
    *,
    retryable: bool = False,
    retry_after: float | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "retryable": retryable}
    if retry_after is not None:
        error["retry_after"] = retry_after
    if request_id is None:  # nothing to answer: an error event for the connection
        return {"type": "event", "event": "error", "payload": error}
    return {"type": "res", "id": request_id, "ok": False, "error": error}


def event_frame(
    event: str,
    payload: dict[str, Any],
    *,
    conversation: str | None = None,
    seq: int | None = None,
    first_seq: int | None = None,
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "event", "event": event, "payload": payload}
    if conversation is not None:
        frame["conversation"] = conversation
        frame["seq"] = seq
        if first_seq is not None and first_seq != seq:
            frame["first_seq"] = first_seq  # a coalesced run of deltas covers first_seq..seq
    return frame


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(frame)"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)
