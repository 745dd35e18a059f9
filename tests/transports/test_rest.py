"""The REST API and the health probes against a live server."""

from __future__ import annotations

import httpx
import openai

from tests.transports.conftest import Server


def chat(server: Server, user: str, character: str, text: str) -> str:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as c:
        raw = c.chat.completions.with_raw_response.create(
            model=character, user=user, messages=[{"role": "user", "content": text}]
        )
    return raw.headers["X-Personae-Conversation"]


def test_health_and_readiness(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    for name in ("storage", "characters", "coordination", "backends", "backend:fake"):
        assert checks[name] == "ok", name
    assert checks["task:heartbeat"] == "ok"
    assert checks["task:session-sweeper"] == "ok"


def test_characters_are_listed_with_their_public_fields(server: Server) -> None:
    characters = httpx.get(f"{server.url}/api/characters").json()
    aria = next(c for c in characters if c["id"] == "aria")
    assert aria["name"] == "Aria"
    assert aria["greetings"][0].startswith("Captain!")
    assert "sci-fi" in aria["tags"]
    assert httpx.get(f"{server.url}/api/characters/bram").json()["name"] == "Bram"
    missing = httpx.get(f"{server.url}/api/characters/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "character_not_found"


def test_conversations_and_messages_read_back_in_order(server: Server) -> None:
    server.model.enqueue("Aye, captain.")
    conversation = chat(server, "sam", "aria", "Engage!")
    chat(server, "sam", "bram", "Hello?")

    listed = httpx.get(f"{server.url}/api/conversations", params={"user": "sam"}).json()
    assert {c["character_id"] for c in listed} == {"aria", "bram"}
    only_aria = httpx.get(
        f"{server.url}/api/conversations", params={"user": "sam", "character": "aria"}
    ).json()
    assert [c["id"] for c in only_aria] == [conversation]
    assert only_aria[0]["last_seq"] == 3

    messages = httpx.get(
        f"{server.url}/api/conversations/{conversation}/messages", params={"user": "sam"}
    ).json()
    assert [(m["seq"], m["role"], m["content"]) for m in messages] == [
        (
            1,
            "assistant",
            "Captain! The charts are ready and the coffee is hot. Where are we headed?",
        ),
        (2, "user", "Engage!"),
        (3, "assistant", "Aye, captain."),
    ]
    assert messages[2]["model"] == "fake"
    assert messages[2]["status"] == "complete"
    later = httpx.get(
        f"{server.url}/api/conversations/{conversation}/messages",
        params={"user": "sam", "after_seq": 2},
    ).json()
    assert [m["seq"] for m in later] == [3]


def test_another_users_conversation_is_not_found(server: Server) -> None:
    conversation = chat(server, "sam", "aria", "private words")
    for user in ("eve", None):
        params = {"user": user} if user else {}
        response = httpx.get(
            f"{server.url}/api/conversations/{conversation}/messages", params=params
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "conversation_not_found"
    assert httpx.get(f"{server.url}/api/conversations", params={"user": "eve"}).json() == []


def test_query_parameters_are_validated(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/conversations", params={"limit": "lots"})
    assert response.status_code == 400
    assert "limit" in response.json()["error"]["message"]


def test_unknown_routes_use_the_same_error_shape(server: Server) -> None:
    response = httpx.get(f"{server.url}/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
