"""The embedded default, as ``make run`` starts it: no backend configured, so the packaged
Gemma 3 270M runs in-process through llama.cpp, behind the real HTTP server."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from personae.app import build_app
from personae.settings import Settings
from tests.live_server import live_server

REPO_CHARACTERS = Path(__file__).parents[1] / "characters"
pytestmark = pytest.mark.slow


def test_the_default_server_answers_with_the_packaged_gemma_model(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        characters_dir=REPO_CHARACTERS,
        generation={"max_tokens": 32, "seed": 7},  # type: ignore[arg-type]
    )
    assert settings.llm.base_url is None
    assert settings.llm.model_path is None
    with live_server(build_app(settings), startup_timeout_s=120) as url:
        with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
            plain = client.chat.completions.create(
                model="bram",
                user="sam",
                messages=[{"role": "user", "content": "Hello Bram, may I come in?"}],
            )
            streamed = client.chat.completions.create(
                model="bram",
                user="sam",
                messages=[{"role": "user", "content": "What do you do all day here?"}],
                stream=True,
            )
            pieces = [c.choices[0].delta.content or "" for c in streamed if c.choices]
        conversation = httpx.get(f"{url}/api/conversations", params={"user": "sam"}).json()[0]
        messages = httpx.get(
            f"{url}/api/conversations/{conversation['id']}/messages", params={"user": "sam"}
        ).json()

    reply = plain.choices[0].message.content or ""
    assert reply.strip(), "the local model produced text"
    assert "".join(pieces).strip()
    assert len(pieces) > 2, "the reply streamed in several pieces"
    assert plain.usage is not None
    assert plain.usage.prompt_tokens > 50  # persona and scenario went in, counted by llama.cpp
    assert 0 < plain.usage.completion_tokens <= 32 + 1
    assistant = [m for m in messages if m["role"] == "assistant"]
    assert [m["model"] for m in assistant[1:]] == ["llamacpp", "llamacpp"]
    assert (settings.data_dir / "models" / "gemma-3-270m-q4_k_m.gguf").is_file()
