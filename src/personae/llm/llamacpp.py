"""A ChatModel over a local GGUF file with llama-cpp-python.

llama.cpp blocks and a context is not thread-safe: each model runs one generation at a time on
its own worker thread, which hands pieces to the event loop through a queue. One thread for the
model's whole life, not any thread of a pool: llama.cpp built with OpenMP keeps a team of
compute threads per calling thread, and turns handed to a pool's threads left several teams
competing for the cores (some conversations decoded at 17 ms a token instead of 14 on 2
cores). ``llama_cpp`` is imported only when a model is opened, so the package works without the
``local`` extra."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from threading import Event
from typing import Any, Self, TypeAlias

from personae.core.ports import ChatModel
from personae.core.types import ChatRequest, ModelChunk, Usage
from personae.errors import BackendProtocolError, BackendUnavailable, ConfigurationError
from personae.llm.packaged import INSTALL_HINT
from personae.llm.transcript import ReplyTrimmer, transcript_prompt
from personae.plugins.specs import BackendConfig

PROMPT_FORMATS = ("transcript", "chat_template")

# What the worker thread hands the loop: a piece of text, the final chunk, or an error.
_Item: TypeAlias = str | ModelChunk | BaseException


@dataclass
class Progress:
    """A llama.cpp stopping criterion: counts generated tokens, stops once the consumer left."""

    cancel: Event
    first: int | None = None  # context length at the first token: the prompt
    generated: int = 0

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        # By length, not by calls: llama-cpp-python calls once more after the last token.
        self.first = len(input_ids) if self.first is None else self.first
        self.generated = max(self.generated, len(input_ids) - self.first + 1)
        return self.cancel.is_set()


class LlamaCppChatModel(ChatModel):
    remote = False  # in-process: exempt from PII redaction by default

    def __init__(
        self,
        *,
        name: str,
        model_path: Path,
        n_ctx: int = 2048,
        n_threads: int = 2,
        prompt_format: str = "transcript",
        seed: int | None = None,
    ) -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise ConfigurationError(
                f"unknown prompt_format {prompt_format!r}; known: {', '.join(PROMPT_FORMATS)}"
            )
        self.name = name
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.prompt_format = prompt_format
        self.seed = seed
        self._llama: Any = None
        self._lock = asyncio.Lock()  # one generation at a time: a context is not thread-safe
        self._thread: ThreadPoolExecutor | None = None  # the one thread that runs llama.cpp

    @classmethod
    def from_config(cls, config: BackendConfig) -> Self:
        options = config.options
        try:
            seed = options.get("seed")
            return cls(
                name=config.name,
                model_path=Path(options["model_path"]),
                n_ctx=int(options.get("n_ctx", 2048)),
                n_threads=int(options.get("n_threads", 2)),
                prompt_format=str(options.get("prompt_format", "transcript")),
                seed=int(seed) if seed is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"backend {config.name!r} (llamacpp): missing or invalid option {exc}",
                backend=config.name,
            ) from exc

    @property
    def context_window(self) -> int | None:
        return int(self._llama.n_ctx()) if self._llama is not None else self.n_ctx

    def count_tokens(self, text: str) -> int:
        # The vocabulary is read-only, so tokenizing beside a running generation is safe.
        if self._llama is None or not text:
            return super().count_tokens(text)
        return len(self._llama.tokenize(text.encode(), add_bos=False, special=False))

    async def open(self) -> None:
        if self._llama is None:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"llama {self.name}")
            loop = asyncio.get_running_loop()
            self._llama = await loop.run_in_executor(self._thread, self._load)

    async def close(self) -> None:
        async with self._lock:  # never free the context under a running generation
            llama, self._llama = self._llama, None
            thread, self._thread = self._thread, None
        if llama is not None:
            llama.close()
        if thread is not None:
            thread.shutdown(wait=False)  # idle: the lock was free, so nothing runs on it

    def _load(self) -> Any:
        path = self.model_path
        if not path.is_file():
            raise ConfigurationError(f"model file not found: {path}", path=str(path))
        try:
            import llama_cpp  # optional: the 'local' extra, imported on demand
        except ImportError as exc:
            raise ConfigurationError(f"llama-cpp-python is not installed; {INSTALL_HINT}") from exc
        try:
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                verbose=False,
                seed=self.seed if self.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED,
            )
        except (ValueError, RuntimeError) as exc:
            raise ConfigurationError(f"cannot load model {path}: {exc}", path=str(path)) from exc

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ModelChunk, None]:
        async with self._lock:
            llama, thread = self._llama, self._thread
            if llama is None or thread is None:
                raise RuntimeError(f"model {self.name!r} is not open; use it with 'async with'")
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[_Item] = asyncio.Queue()
            cancel = Event()

            def emit(item: _Item) -> None:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # the loop is closed: nobody is listening any more
                    cancel.set()

            worker = loop.run_in_executor(thread, self._work, llama, request, emit, cancel)
            try:
                while True:
                    item = await queue.get()
                    if isinstance(item, BaseException):
                        raise item
                    yield ModelChunk(text=item) if isinstance(item, str) else item
                    if isinstance(item, ModelChunk):
                        return
            finally:
                cancel.set()
                await _join(worker)

    def _work(
        self, llama: Any, request: ChatRequest, emit: Callable[[_Item], None], cancel: Event
    ) -> None:
        """The worker thread's body. Every outcome goes through ``emit``: the loop waits for it."""
        try:
            progress = Progress(cancel)
            chunks, prompt_tokens = self._start(llama, request, progress)
            tidy, text, finish_reason = ReplyTrimmer(), [], "length"
            try:
                for chunk in chunks:
                    if cancel.is_set():
                        return
                    choice = chunk["choices"][0]
                    piece = choice["text"] if "text" in choice else choice["delta"].get("content")
                    finish_reason = choice.get("finish_reason") or finish_reason
                    if out := tidy.feed(piece or ""):
                        text.append(out)
                        emit(out)
            finally:
                chunks.close()  # ends llama.cpp's loop here, in the thread that owns the context
            if prompt_tokens is None:  # a chat template adds tokens we do not see: estimate
                prompt_tokens = sum(self.count_tokens(m.content) for m in request.messages)
            usage = Usage(prompt_tokens, progress.generated or self.count_tokens("".join(text)))
            emit(ModelChunk(finish_reason=finish_reason, usage=usage))
        except BackendProtocolError as exc:  # ours: the prompt does not fit
            emit(exc)
        except ValueError as exc:  # llama-cpp-python's word for a prompt it cannot take
            emit(BackendProtocolError(f"llama.cpp refused the request: {exc}", backend=self.name))
        except BaseException as exc:
            emit(BackendUnavailable(f"llama.cpp failed: {exc!r}", backend=self.name))

    def _start(
        self, llama: Any, request: ChatRequest, progress: Progress
    ) -> tuple[Generator[dict[str, Any], None, None], int | None]:
        """Start a streaming completion; returns its chunks and the prompt's token count."""
        import llama_cpp  # already imported by open(), so this is a lookup

        params = request.params
        seed = params.seed if params.seed is not None else self.seed
        options: dict[str, Any] = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            # Without a seed llama-cpp-python derives the same one on every call.
            "seed": seed if seed is not None else secrets.randbelow(2**31),
            "stream": True,
        }
        if self.prompt_format == "chat_template":
            messages = [{"role": m.role.value, "content": m.content} for m in request.messages]
            stop = [stop for stop in params.stop if stop]  # an empty stop would match at once
            return llama.create_chat_completion(messages, stop=stop, **options), None
        prompt, stops = transcript_prompt(request)
        # Tokenized here with special=False, so that user text cannot forge control tokens.
        tokens = llama.tokenize(prompt.encode(), add_bos=True, special=False)
        if len(tokens) >= self.n_ctx:
            raise BackendProtocolError(
                f"the prompt has {len(tokens)} tokens; the context window is {self.n_ctx}",
                backend=self.name,
                reason="context_overflow",
            )
        criteria = llama_cpp.StoppingCriteriaList([progress])
        chunks = llama.create_completion(tokens, stop=stops, stopping_criteria=criteria, **options)
        return chunks, len(tokens)


async def _join(worker: asyncio.Future[None]) -> None:
    """Wait for the worker thread even through cancellation (it ends within a token): the lock
    must not pass on while the thread still uses the context."""
    cancelled = False
    while not worker.done():
        try:
            await asyncio.wait({worker})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
