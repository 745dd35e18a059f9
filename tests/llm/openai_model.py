"""The OpenAICompatChatModel the llm tests point at their fake server (a key to keep secret)."""

from __future__ import annotations

from personae.llm.openai_compat import OpenAICompatChatModel


def make_model(
    base_url: str, *, timeout_s: float = 5.0, connect_timeout_s: float = 1.0, stream: bool = True
) -> OpenAICompatChatModel:
    return OpenAICompatChatModel(
        name="upstream",
        model="test-model",
        base_url=base_url,
        api_key="sk-secret-key",
        timeout_s=timeout_s,
        connect_timeout_s=connect_timeout_s,
        streaming=stream,
    )
