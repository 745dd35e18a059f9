"""Routing by what a turn needs, end to end: rules declared in settings (``routes.rules`` with
``kinds`` and ``min_prompt_tokens``), a live server, the OpenAI client. Code goes to the
coding backend, a prompt that needs a long context to the long-context one (a long message,
or a conversation grown long), anything else to the default."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from personae.app import build_app
from personae.testing import FakeChatModel
from tests.live_server import live_server
from tests.transports.conftest import make_settings

CODE = "Why does this crash?\n```python\nprint(1 / 0)\n```"


@dataclass
class Served:
    client: openai.OpenAI
    models: dict[str, FakeChatModel]

    def ask(self, text: str, user: str = "sam") -> str:
        completion = self.client.chat.completions.create(
            model="aria", user=user, messages=[{"role": "user", "content": text}]
        )
        return completion.choices[0].message.content or ""

    def served_by(self) -> list[str]:
        return [name for name, model in self.models.items() for _ in model.requests]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    models = {
        name: FakeChatModel(name=name, default_reply=f"from {name}")
        for name in ("small", "coder", "long")
    }
    settings = make_settings(
        tmp_path,
        routes={
            "default": ["small"],
            "rules": [
                {"name": "code", "kinds": ["code"], "chain": ["coder", "small"]},
                {"name": "long", "min_prompt_tokens": 1500, "chain": ["long", "small"]},
            ],
            "retry": {"retries": 0},
        },
    )
    with (
        live_server(build_app(settings, backends=models)) as url,
        openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client,
    ):
        yield Served(client, models)


def test_code_goes_to_the_coding_backend(served: Served) -> None:
    assert served.ask(CODE) == "from coder"
    assert served.ask("Thanks, that helps.") == "from small"
    assert served.models["coder"].requests[0].messages[-1].content == CODE


def test_a_long_message_goes_to_the_long_context_backend(served: Served) -> None:
    assert served.ask("Please summarise this: " + "the quick brown fox " * 320) == "from long"
    assert served.served_by() == ["long"]


def test_a_conversation_that_grew_long_moves_to_the_long_context_backend(served: Served) -> None:
    paragraph = "I walked along the river and watched the boats go by for hours. " * 15
    answers = [served.ask(paragraph) for _ in range(6)]
    assert answers[0] == "from small"
    assert answers[-1] == "from long"
    assert served.served_by().count("long") >= 1
    # Another user's conversation is short: the default serves it.
    assert served.ask("Hello", user="eve") == "from small"
