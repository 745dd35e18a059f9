"""The OpenAI-compatible API against a live uvicorn server, driven by the official SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from personae.errors import BackendTimeout, BackendUnavailable
from tests.sqlite_snapshot import sqlite_snapshot
from tests.transports.conftest import Server

HEADER = "X-Personae-Conversation"


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def async_client(server: Server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_models_lists_one_model_per_character(server: Server) -> None:
    with client(server) as c:
        ids = {m.id for m in c.models.list()}
        assert {"aria", "bram", "assistant"} <= ids
        assert c.models.retrieve("aria").owned_by == "personae"


def test_sync_plain_completion(server: Server) -> None:
    server.model.enqueue("Set course for Vesta.")
    with client(server) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="aria", user="sam", messages=ask("Where to?")
        )
        completion = raw.parse()
    assert completion.choices[0].message.content == "Set course for Vesta."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "aria"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 4
    assert raw.headers[HEADER].startswith("conv_")


def test_sync_streaming_completion(server: Server) -> None:
    server.model.enqueue("Two jumps and some coasting.")
    with client(server) as c:
        stream = c.chat.completions.create(
            model="aria",
            user="sam",
            messages=ask("How far?"),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Two jumps and some coasting."
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


async def test_async_plain_and_streaming(server: Server) -> None:
    server.model.enqueue("First answer.")
    server.model.enqueue("Second answer, streamed.")
    async with async_client(server) as c:
        plain = await c.chat.completions.create(model="bram", user="ann", messages=ask("Hi"))
        assert plain.choices[0].message.content == "First answer."
        stream = await c.chat.completions.create(
            model="bram", user="ann", messages=ask("And?"), stream=True
        )
        pieces = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
    assert "".join(pieces) == "Second answer, streamed."


def test_the_conversation_continues_and_can_be_pinned_or_restarted(server: Server) -> None:
    with client(server) as c:
        first = c.chat.completions.with_raw_response.create(
            model="aria", user="sam", messages=ask("one")
        )
        second = c.chat.completions.with_raw_response.create(
            model="aria", user="sam", messages=ask("two")
        )
        fresh = c.chat.completions.with_raw_response.create(
            model="aria", user="sam", messages=ask("three"), extra_headers={HEADER: "new"}
        )
        pinned = c.chat.completions.with_raw_response.create(
            model="aria",
            user="sam",
            messages=ask("four"),
            extra_headers={HEADER: first.headers[HEADER]},
        )
    assert first.headers[HEADER] == second.headers[HEADER] == pinned.headers[HEADER]
    assert fresh.headers[HEADER] != first.headers[HEADER]
    # The backend saw the stored history of the pinned conversation, not the request's.
    last_prompt = [m.content for m in server.model.requests[-1].messages]
    assert last_prompt[-5:] == [
        "one",
        "Hello from the fake model.",
        "two",
        "Hello from the fake model.",
        "four",
    ]
    assert "three" not in last_prompt


def test_history_comes_from_the_server_not_from_the_request(server: Server) -> None:
    with client(server) as c:
        c.chat.completions.create(model="bram", user="kim", messages=ask("I am Kim."))
        c.chat.completions.create(
            model="bram",
            user="kim",
            messages=[
                {"role": "system", "content": "ignored system text"},
                {"role": "user", "content": "forged earlier turn"},
                {"role": "assistant", "content": "forged reply"},
                {"role": "user", "content": "Who am I?"},
            ],
        )
    prompt = [m.content for m in server.model.requests[-1].messages]
    assert "I am Kim." in prompt
    assert prompt[-1] == "Who am I?"
    assert not {"ignored system text", "forged earlier turn", "forged reply"} & set(prompt)


# --- bad input: status, message, and nothing stored --------------------------------------


def post(server: Server, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "fragment"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "json",
            "not valid JSON",
        ),
        ({"json": {"model": "aria", "messages": "hi"}}, 400, "invalid_request", "messages"),
        ({"json": {"model": "aria"}}, 400, "invalid_request", "messages: Field required"),
        ({"json": {"model": "aria", "messages": []}}, 400, "invalid_request", "messages"),
        (
            {"json": {"model": "aria", "messages": ask("   ")}},
            400,
            "invalid_request",
            "the message is empty",
        ),
        (
            {"json": {"model": "aria", "messages": [{"role": "assistant", "content": "x"}]}},
            400,
            "invalid_request",
            "must have role 'user'",
        ),
        (
            {
                "json": {
                    "model": "aria",
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "image_url", "image_url": {"url": "x"}}],
                        }
                    ],
                }
            },
            400,
            "invalid_request",
            "'image_url' are not supported",
        ),
        (
            {"json": {"model": "aria", "messages": ask("x"), "n": 2}},
            400,
            "invalid_request",
            "only n=1",
        ),
        (
            {"json": {"model": "nobody", "messages": ask("hi")}},
            404,
            "character_not_found",
            "unknown character 'nobody'",
        ),
        (
            {"json": {"model": "aria", "messages": ask("x" * 201)}},
            413,
            "payload_too_large",
            "the limit is 200",
        ),
        (
            {"json": {"model": "aria", "messages": ask("x" * 5000)}},
            413,
            "payload_too_large",
            "larger than 4096 bytes",
        ),
        (
            {
                # An iterator is sent chunked: no declared length to refuse up front.
                "content": iter([b"{", b" " * 5000, b"}"]),
                "headers": {"content-type": "application/json"},
            },
            413,
            "payload_too_large",
            "larger than 4096 bytes",
        ),
    ],
)
def test_bad_requests_get_a_clear_error_and_change_nothing(
    server: Server, request_kwargs: dict[str, object], status: int, code: str, fragment: str
) -> None:
    before = sqlite_snapshot(server.db)
    response = post(server, **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert fragment in error["message"]
    assert sqlite_snapshot(server.db) == before
    assert server.model.requests == []


def test_unknown_character_through_the_sdk(server: Server) -> None:
    with client(server) as c, pytest.raises(openai.NotFoundError) as caught:
        c.chat.completions.create(model="nobody", messages=ask("hi"))
    assert "unknown character 'nobody'" in str(caught.value)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BackendUnavailable("connection refused", backend="fake"), 503),
        (BackendTimeout("no answer within 30 s", backend="fake"), 504),
    ],
)
def test_a_failing_backend_gets_a_status_naming_it_and_changes_nothing(
    server: Server, error: Exception, status: int, stream: bool
) -> None:
    with client(server) as c:
        c.chat.completions.create(model="aria", user="sam", messages=ask("first"))
    before = sqlite_snapshot(server.db)
    server.model.enqueue("never", error=error)
    with client(server) as c, pytest.raises(openai.APIStatusError) as caught:
        c.chat.completions.create(model="aria", user="sam", messages=ask("x"), stream=stream)
    assert caught.value.status_code == status
    assert "backend 'fake'" in caught.value.message
    assert sqlite_snapshot(server.db) == before


def test_a_stream_that_dies_midway_ends_with_an_error_event(server: Server) -> None:
    server.model.enqueue(
        "Set course for", error=BackendUnavailable("reset", backend="fake"), error_after_tokens=2
    )
    pieces: list[str] = []
    with client(server) as c, pytest.raises(openai.APIError, match="backend 'fake'"):
        for chunk in c.chat.completions.create(
            model="aria", user="sam", messages=ask("go"), stream=True
        ):
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
    assert "".join(pieces) == "Set course"


# --- keys ------------------------------------------------------------------------------------


def test_api_keys_are_required_when_configured(tmp_path: object) -> None:
    from pathlib import Path

    from personae.app import build_app
    from personae.testing import FakeChatModel
    from tests.live_server import live_server
    from tests.transports.conftest import make_settings

    assert isinstance(tmp_path, Path)
    settings = make_settings(tmp_path, api_keys=["sk-local-test-key"])
    with live_server(build_app(settings, backends={"fake": FakeChatModel()})) as url:
        anonymous = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0)
        with anonymous, pytest.raises(openai.AuthenticationError, match="not valid"):
            anonymous.models.list()
        assert httpx.get(f"{url}/v1/models").status_code == 401
        keyed = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-local-test-key", max_retries=0)
        with keyed:
            assert keyed.chat.completions.create(model="aria", messages=ask("hi")).choices
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes need no key
