"""The OpenAI chunk encoding: the per-stream template of content events is byte for byte what
encoding the whole chunk gives, whatever the text and names hold."""

from __future__ import annotations

import json

import pytest

from personae.transports.openai_models import ContentChunks, chunk_body, sse_data

TEXTS = [
    " word",
    "",
    'a "quoted" \\ back\\slash',
    "line\nbreak\ttab\r",
    "naïve café — ünïcödé",
    "emoji 🙂 and \u2028 separator",
    "\x00\x1f control",
    "</script>",
]


@pytest.mark.parametrize("model", ["mira", 'odd "model" \\ név', "juniper-quill"])
@pytest.mark.parametrize("text", TEXTS)
def test_a_content_event_is_the_whole_chunk_encoded(model: str, text: str) -> None:
    ids = {"completion_id": "chatcmpl-0123abcd", "created": 1764425000, "model": model}
    whole = sse_data(chunk_body(**ids, delta={"content": text}))  # type: ignore[arg-type]
    assert ContentChunks(**ids).event(text) == whole  # type: ignore[arg-type]


def test_a_content_event_reads_back_as_the_openai_chunk() -> None:
    event = ContentChunks(completion_id="chatcmpl-1", created=7, model="mira").event("hé")
    assert event.startswith("data: ")
    assert event.endswith("\n\n")
    assert json.loads(event.removeprefix("data: ")) == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "mira",
        "choices": [
            {"index": 0, "delta": {"content": "hé"}, "finish_reason": None, "logprobs": None}
        ],
    }
