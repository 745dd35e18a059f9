"""The fake backend over a real socket: the OpenAI wire format (read by the official SDK too),
the stamps and the pace, injected faults, bad input, and its counters."""

from __future__ import annotations

import json
import math
import time

import httpx
import openai
import pytest

from personae.fakellm import FakeLLMConfig, FaultRates, ReplyLengths
from tests.fakellm.conftest import FakeServer

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "hello there"}]}


def _words(text: str) -> list[str]:
    return text.split()


def _stream(url: str, body: dict[str, object]) -> list[dict[str, object] | str]:
    events: list[dict[str, object] | str] = []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=10) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_a_stream_opens_with_the_arrival_then_paced_token_stamps(fake_server: FakeServer) -> None:
    config = FakeLLMConfig(
        first_token_s=0.1, tokens_per_s=100, lengths=ReplyLengths.parse("fixed:10")
    )
    with fake_server(config) as (url, _):
        sent_ns = time.time_ns()
        events = _stream(url, {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    chunks = [e for e in events if isinstance(e, dict)]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]  # type: ignore[index]
    text = "".join(d.get("content", "") for d in deltas)
    words = _words(text)
    assert words[0].startswith("a")
    assert len(words) == 11
    arrival = int(words[0][1:])
    stamps = [int(w[1:]) for w in words[1:]]
    assert all(w.startswith("t") for w in words[1:])
    assert sent_ns <= arrival <= stamps[0]
    assert stamps == sorted(stamps)
    assert (stamps[0] - arrival) / 1e9 >= 0.099  # time to first token, timers within 1 ms
    assert (stamps[-1] - stamps[0]) / 1e9 >= 0.085  # 9 gaps of 10 ms; timers wake within 1 ms
    usage = chunks[-1]["usage"]
    assert usage == {"prompt_tokens": 2, "completion_tokens": 10, "total_tokens": 12}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


def test_a_whole_reply_waits_for_its_last_token_and_honours_max_tokens(
    fake_server: FakeServer,
) -> None:
    config = FakeLLMConfig(tokens_per_s=50, lengths=ReplyLengths.parse("fixed:100"))
    with fake_server(config) as (url, _):
        started = time.monotonic()
        response = httpx.post(f"{url}/v1/chat/completions", json={**CHAT, "max_tokens": 6})
        took = time.monotonic() - started
    assert response.status_code == 200
    body = response.json()
    words = _words(body["choices"][0]["message"]["content"])
    assert len(words) == 7
    assert words[0].startswith("a")
    assert body["usage"]["completion_tokens"] == 6
    assert took >= 5 / 50  # token 6 was due 5 intervals after the first


def test_the_official_client_reads_it(fake_server: FakeServer) -> None:
    config = FakeLLMConfig(tokens_per_s=0, lengths=ReplyLengths.parse("fixed:5"), embedding_dims=16)
    with fake_server(config) as (url, _):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none")
        try:
            whole = client.chat.completions.create(
                model="fake", messages=[{"role": "user", "content": "hi"}]
            )
            streamed = client.chat.completions.create(
                model="fake", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            pieces = [c.choices[0].delta.content or "" for c in streamed if c.choices]
            vectors = client.embeddings.create(model="fake", input=["one", "two", "one"])  # base64
            floats = client.embeddings.create(model="fake", input="one", encoding_format="float")
            models = client.models.list()
        finally:
            client.close()
    assert len(_words(whole.choices[0].message.content or "")) == 6
    assert len(_words("".join(pieces))) == 6
    first, second, again = (item.embedding for item in vectors.data)
    assert len(first) == 16
    assert math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-5)
    assert first == again
    assert first != second
    assert floats.data[0].embedding == pytest.approx(first, rel=1e-6)
    assert [m.id for m in models.data] == ["fake"]


@pytest.mark.parametrize(("kind", "status"), [("429", 429), ("500", 500), ("503", 503)])
def test_status_faults_answer_with_an_openai_error(
    fake_server: FakeServer, kind: str, status: int
) -> None:
    config = FakeLLMConfig(faults=FaultRates.parse([f"{kind}=1"]))
    with fake_server(config) as (url, fake):
        response = httpx.post(f"{url}/v1/chat/completions", json=CHAT)
    assert response.status_code == status
    assert response.json()["error"]["message"] == f"injected fault {status}"
    assert (response.headers.get("retry-after") == "1") == (status == 429)
    assert fake.stats.faults == {f"status_{kind}": 1}


def test_a_disconnect_fault_cuts_a_stream_midway(fake_server: FakeServer) -> None:
    config = FakeLLMConfig(
        tokens_per_s=0, lengths=ReplyLengths.parse("fixed:10"), faults=FaultRates(disconnect=1)
    )
    received: list[str] = []
    with fake_server(config) as (url, fake):
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream(
                "POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True}
            ) as response,
        ):
            received.extend(line for line in response.iter_lines() if '"content":" ' in line)
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(f"{url}/v1/chat/completions", json=CHAT)  # a whole reply: cut too
        assert httpx.get(f"{url}/v1/models").status_code == 200  # and the server goes on
    assert len(received) == 5  # half the reply
    assert fake.stats.streams_finished == 0


def test_a_timeout_fault_holds_the_request_until_the_caller_gives_up(
    fake_server: FakeServer,
) -> None:
    config = FakeLLMConfig(faults=FaultRates(timeout=1), hang_s=30)
    with fake_server(config) as (url, fake):
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 5
    assert fake.stats.faults == {"timeout": 1}


def test_a_timeout_fault_drops_the_connection_after_hang_s(fake_server: FakeServer) -> None:
    with fake_server(FakeLLMConfig(faults=FaultRates(timeout=1), hang_s=0.2)) as (url, _):
        started = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10)
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v1/chat/completions", b"not json", 400, "not JSON"),
        ("/v1/chat/completions", b"[1, 2]", 400, "JSON object"),
        ("/v1/chat/completions", json.dumps({**CHAT, "max_tokens": 0}).encode(), 400, "max_tokens"),
        ("/v1/embeddings", b'{"input": []}', 400, "input must be"),
        ("/v1/embeddings", b'{"input": "x", "encoding_format": "hex"}', 400, "encoding_format"),
        ("/v1/embeddings", b'{"input": "x", "dimensions": 0}', 400, "dimensions"),
        ("/v1/nothing", b"{}", 404, "no route"),
    ],
)
def test_bad_requests_get_a_clear_error_and_change_nothing(
    fake_server: FakeServer, path: str, body: bytes, status: int, message: str
) -> None:
    with fake_server(FakeLLMConfig(tokens_per_s=0)) as (url, fake):
        response = httpx.post(f"{url}{path}", content=body)
        assert response.status_code == status
        assert message in response.json()["error"]["message"]
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT).status_code == 200
    assert fake.stats.requests == 1
    assert fake.stats.faults == {}


def test_get_on_a_post_route_is_405(fake_server: FakeServer) -> None:
    with fake_server(FakeLLMConfig()) as (url, _):
        assert httpx.get(f"{url}/v1/chat/completions").status_code == 405


def test_stats_count_and_reset(fake_server: FakeServer) -> None:
    config = FakeLLMConfig(tokens_per_s=1000, lengths=ReplyLengths.parse("fixed:4"))
    with fake_server(config) as (url, _):
        _stream(url, {**CHAT, "stream": True})
        httpx.post(f"{url}/v1/chat/completions", json=CHAT)
        stats = httpx.get(f"{url}/stats").json()
        httpx.post(f"{url}/stats/reset")
        after = httpx.get(f"{url}/stats").json()
    assert stats["requests"] == 2
    assert stats["tokens"] == 8
    assert stats["streams_started"] == stats["streams_finished"] == 1
    assert stats["pacing_lag_ms"]["count"] == 4
    assert stats["pacing_lag_ms"]["p50"] >= 0
    assert after["requests"] == 0
    assert after["pacing_lag_ms"]["p50"] is None


def test_the_same_seed_gives_the_same_replies_in_the_same_order(fake_server: FakeServer) -> None:
    config = FakeLLMConfig(tokens_per_s=0, lengths=ReplyLengths.parse("uniform:1-50"), seed=42)

    def lengths() -> list[int]:
        with fake_server(config) as (url, _):
            return [
                len(
                    _words(
                        httpx.post(f"{url}/v1/chat/completions", json=CHAT).json()["choices"][0][
                            "message"
                        ]["content"]
                    )
                )
                for _ in range(8)
            ]

    first = lengths()
    assert first == lengths()
    assert len(set(first)) > 3
