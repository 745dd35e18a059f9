"""LlamaCppChatModel with the real packaged Gemma 3 270M model (the ``slow`` tests), plus the
parts that need no model: the transcript format, configuration and lazy imports."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from personae.core.types import ChatMessage, ChatRequest, GenerationParams, ModelChunk, Role
from personae.errors import BackendProtocolError, ConfigurationError
from personae.llm.llamacpp import LlamaCppChatModel
from personae.llm.plugin import register_chat_models
from personae.llm.transcript import transcript_prompt
from personae.plugins.specs import BackendConfig, ChatModelFactory

MAX_TOKENS = 24


def baker_request(seed: int = 2, **params: Any) -> ChatRequest:
    return ChatRequest(
        messages=(
            ChatMessage(Role.SYSTEM, "Mira is a friendly baker who loves to talk about bread."),
            ChatMessage(Role.USER, "Hi Mira! Tell me about your favourite bread."),
        ),
        params=GenerationParams(**{"max_tokens": MAX_TOKENS, "seed": seed, **params}),
        assistant_name="Mira",
    )


@pytest.fixture
async def model(gemma_path: Path) -> AsyncIterator[LlamaCppChatModel]:
    async with LlamaCppChatModel(name="local", model_path=gemma_path, n_ctx=512) as opened:
        yield opened


async def collect(model: LlamaCppChatModel, request: ChatRequest) -> list[ModelChunk]:
    return [chunk async for chunk in model.stream(request)]


class CompletionSpy:
    """Wraps the loaded model's ``create_completion`` to see, from the test, how far llama.cpp
    generated and whether its generator was closed. ``delay_s`` slows each token down, as on a
    slower machine, so that stopping early happens long before the natural end."""

    def __init__(self, model: LlamaCppChatModel, delay_s: float = 0.0) -> None:
        self.pulled = 0
        self.finished = False
        self._delay_s = delay_s
        self._real = model._llama.create_completion
        model._llama.create_completion = self._create

    def _create(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        def chunks() -> Iterator[Any]:
            try:
                for chunk in self._real(*args, **kwargs):
                    self.pulled += 1
                    time.sleep(self._delay_s)  # in the worker thread, off the event loop
                    yield chunk
            finally:
                self.finished = True

        self.pulled, self.finished = 0, False
        return chunks()


# --- without a model ------------------------------------------------------------------------


def test_transcript_puts_system_text_first_and_names_every_speaker() -> None:
    request = ChatRequest(
        messages=(
            ChatMessage(Role.SYSTEM, "Mira bakes bread."),
            ChatMessage(Role.USER, "Hi!"),
            ChatMessage(Role.ASSISTANT, "Hello there."),
            ChatMessage(Role.SYSTEM, "Mira is tired today."),
            ChatMessage(Role.USER, "Any rye?", name="Tom"),
        ),
        params=GenerationParams(stop=("###",)),
        user_name="Ann",
        assistant_name="Mira",
    )

    prompt, stops = transcript_prompt(request)

    assert prompt == (
        "Mira bakes bread.\n\nMira is tired today.\n\n"
        "Ann: Hi!\nMira: Hello there.\nTom: Any rye?\nMira:"
    )
    assert stops == ["\nAnn:", "\nMira:", "\nTom:", "###"]


async def test_a_missing_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"

    with pytest.raises(ConfigurationError, match=re.escape(str(missing))) as caught:
        async with LlamaCppChatModel(name="local", model_path=missing):
            pass
    assert caught.value.context["path"] == str(missing)


def test_the_plugin_registers_both_kinds_and_validates_options(tmp_path: Path) -> None:
    factories: dict[str, ChatModelFactory] = {}
    register_chat_models(register=lambda kind, factory: factories.setdefault(kind, factory))
    assert set(factories) == {"openai", "llamacpp"}

    local = factories["llamacpp"](
        BackendConfig(
            name="local",
            kind="llamacpp",
            options={"model_path": str(tmp_path / "m.gguf"), "n_ctx": 1024, "seed": 5},
        )
    )
    assert isinstance(local, LlamaCppChatModel)
    assert (local.n_ctx, local.n_threads, local.seed, local.context_window) == (1024, 2, 5, 1024)
    assert local.prompt_format == "transcript"

    with pytest.raises(ConfigurationError, match="model_path"):
        factories["llamacpp"](BackendConfig(name="local", kind="llamacpp"))
    with pytest.raises(ConfigurationError, match="prompt_format"):
        factories["llamacpp"](
            BackendConfig(
                name="local",
                kind="llamacpp",
                options={"model_path": "m.gguf", "prompt_format": "alpaca"},
            )
        )


def test_importing_the_backends_does_not_import_llama_cpp() -> None:
    code = "import sys, personae.llm.plugin; print('llama_cpp' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


# --- with the packaged model ----------------------------------------------------------------


@pytest.mark.slow
async def test_generates_text_with_usage(model: LlamaCppChatModel) -> None:
    chunks = await collect(model, baker_request())

    text = "".join(chunk.text for chunk in chunks)
    final = chunks[-1]
    assert text.strip()
    assert text == text.strip()  # the space after "Mira:" and trailing newlines are trimmed
    assert final.finish_reason in {"stop", "length"}
    assert final.usage is not None
    assert final.usage.prompt_tokens > model.count_tokens("Hi Mira!")
    assert 0 < final.usage.completion_tokens <= MAX_TOKENS
    assert all(chunk.finish_reason is None for chunk in chunks[:-1])


@pytest.mark.slow
async def test_count_tokens_uses_the_model_tokenizer(
    model: LlamaCppChatModel, gemma_path: Path
) -> None:
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(gemma_path), vocab_only=True, verbose=False)
    try:
        for text in ("Hello world", "Brötchen, croissants and sourdough!", "x" * 40):
            expected = len(vocab.tokenize(text.encode(), add_bos=False, special=False))
            assert model.count_tokens(text) == expected
    finally:
        vocab.close()
    assert model.count_tokens("") == 0
    assert model.context_window == 512


@pytest.mark.slow
async def test_concurrent_streams_run_one_after_the_other(model: LlamaCppChatModel) -> None:
    arrivals: list[str] = []
    finals: dict[str, ModelChunk] = {}

    async def consume(label: str, seed: int) -> None:
        async for chunk in model.stream(baker_request(seed=seed)):
            arrivals.append(label)
            if chunk.finish_reason is not None:
                finals[label] = chunk

    async with asyncio.TaskGroup() as group:
        group.create_task(consume("a", 1))
        group.create_task(consume("b", 2))

    assert set(finals) == {"a", "b"}
    first = arrivals[0]
    switch = arrivals.index("b" if first == "a" else "a")
    assert set(arrivals[switch:]) == {arrivals[switch]}  # no interleaving


@pytest.mark.slow
async def test_every_generation_runs_on_the_models_own_thread(model: LlamaCppChatModel) -> None:
    """llama.cpp's OpenMP keeps compute threads per calling thread: generations spread over a
    pool's threads left several teams competing for the cores."""
    threads: list[str] = []
    real = model._llama.create_completion

    def create(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    model._llama.create_completion = create

    async def busy_pool() -> None:  # the default executor's threads, kept busy meanwhile
        await asyncio.gather(*(asyncio.to_thread(time.sleep, 0.05) for _ in range(4)))

    for seed in (1, 2, 3):
        await asyncio.gather(collect(model, baker_request(seed=seed, max_tokens=4)), busy_pool())
    async with asyncio.TaskGroup() as group:
        group.create_task(collect(model, baker_request(seed=4, max_tokens=4)))
        group.create_task(collect(model, baker_request(seed=5, max_tokens=4)))
    assert len(threads) == 5
    assert len(set(threads)) == 1
    assert threads[0].startswith("llama local")


@pytest.mark.slow
async def test_stopping_early_stops_the_worker_thread(model: LlamaCppChatModel) -> None:
    spy = CompletionSpy(model)
    full = await collect(model, baker_request())
    natural = spy.pulled
    assert len(full) > 4  # this seed makes a long reply, so stopping after one piece is early

    spy = CompletionSpy(model, delay_s=0.02)
    stream = model.stream(baker_request())
    async for chunk in stream:
        assert chunk.text
        break
    await stream.aclose()

    # aclose() returns only once the thread has closed llama.cpp's generator.
    assert spy.finished
    assert spy.pulled < natural / 2
    again = await collect(model, baker_request(max_tokens=4))  # the lock was released
    assert again[-1].finish_reason is not None


@pytest.mark.slow
async def test_the_event_loop_keeps_running_during_generation(model: LlamaCppChatModel) -> None:
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await collect(model, baker_request())
    finally:
        done.set()
        await ticker

    assert ticks >= 5


@pytest.mark.slow
async def test_a_prompt_longer_than_the_context_is_refused(model: LlamaCppChatModel) -> None:
    request = ChatRequest(messages=(ChatMessage(Role.USER, "bread " * 800),))

    with pytest.raises(BackendProtocolError) as caught:
        await collect(model, request)

    assert caught.value.backend == "local"
    assert caught.value.context["reason"] == "context_overflow"
    assert (await collect(model, baker_request(max_tokens=2)))[-1].usage is not None


@pytest.mark.slow
async def test_the_chat_template_format_streams_too(gemma_path: Path) -> None:
    async with LlamaCppChatModel(
        name="local", model_path=gemma_path, n_ctx=512, prompt_format="chat_template"
    ) as chat:
        chunks = await collect(chat, baker_request(max_tokens=8))

    assert chunks[-1].finish_reason in {"stop", "length"}
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens > 0
