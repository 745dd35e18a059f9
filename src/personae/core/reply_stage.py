"""The reply stage of a turn: the prompt goes to the backend, the reply comes back as deltas
and is stored.

    the request (PII as tokens for a remote backend, the character's skills as tools)
      -> the tool loop (core/tool_loop.py) -> deltas (tokens restored, blocked words masked)
      -> the reply stored with model, tokens and latency -> done

What a turn that does not complete leaves behind is decided here, in one place (``_settle``):
a reply that stopped short keeps what the user saw, marked ``incomplete`` or ``cancelled``;
a turn with nothing to keep is discarded whole (``discard``), unless its message was
acknowledged as durable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing

import structlog

from personae.core.behaviour.stage import BehaviourStage, BehaviourTurn
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageDelta, MessageDone, TurnEvent
from personae.core.ports import ChatModel, ConversationStore
from personae.core.prompt import AssembledPrompt
from personae.core.safety import TurnGuard
from personae.core.skills import SkillContext
from personae.core.tool_loop import ToolLoop
from personae.core.tracing import Span
from personae.core.turn_recorder import NO_TRACE, TurnTrace
from personae.core.turn_report import TurnReporter
from personae.core.types import (
    ChatRequest,
    GenerationParams,
    InboundMessage,
    MessageStatus,
    NewMessage,
    OpenedTurn,
    Role,
    Usage,
)
from personae.errors import BackendError, BackendProtocolError

log = structlog.get_logger(__name__)


class ReplyStage:
    def __init__(
        self,
        store: ConversationStore,
        catalog: CharacterCatalog,
        behaviour: BehaviourStage,
        tools: ToolLoop,
        reporter: TurnReporter,
        *,
        user_name: str,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._behaviour = behaviour  # a discarded turn takes its step back
        self._tools = tools
        self._reporter = reporter
        self._user_name = user_name
        self._finishing: set[asyncio.Future[object]] = set()

    async def stream(
        self,
        character: Character,
        model: ChatModel,
        opened: OpenedTurn,
        prompt: AssembledPrompt,
        params: GenerationParams,
        inbound: InboundMessage,
        guard: TurnGuard,
        behaviour: BehaviourTurn | None,
        span: Span,
        speaker: str | None = None,
        trace: TurnTrace = NO_TRACE,
    ) -> AsyncGenerator[TurnEvent, None]:
        """``character``'s reply to ``prompt``: its deltas, then its ``MessageDone`` once it
        is stored. ``speaker``: whose reply it is in a group."""
        conversation_id = opened.conversation.id
        request = ChatRequest(
            messages=guard.outbound(prompt.messages),  # PII as tokens for remote backends
            params=params,
            assistant_name=character.name,
            user_name=self._user_name,
            tools=self._tools.offer(character, model),
        )
        context = SkillContext(inbound.user, character.id, conversation_id, inbound.text)
        trace.prompted(request, prompt)
        replies = self._tools.stream(  # the model's tool calls answered by skills, if any
            model,
            request,
            context,
            outbound=guard.outbound,
            restore=guard.vault.restore if guard.vault is not None else str,
        )
        replies = trace.listen(replies)  # the routes taken, heard (core/route_log.py)
        started = time.perf_counter()
        first_token_at: float | None = None
        parts: list[str] = []
        usage: Usage | None = None
        finish_reason = "stop"
        call = span.child("generate", backend=model.name)  # current while the backend runs
        try:
            async with aclosing(call.around(replies)) as chunks:
                async for chunk in chunks:
                    if chunk.text:
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        if shown := guard.feed(chunk.text):  # PII restored, words masked
                            parts.append(shown)
                            yield MessageDelta(conversation_id, shown, speaker)
                    if chunk.usage is not None:
                        usage = chunk.usage
                    if chunk.finish_reason is not None:
                        finish_reason = chunk.finish_reason
            if shown := guard.flush():
                parts.append(shown)
                yield MessageDelta(conversation_id, shown, speaker)
            if guard.output_hits:
                log.info("moderation", stage="output", words=[h.word for h in guard.output_hits])
                self._reporter.moderation("output", guard.output_hits)
            text = "".join(parts).strip()
            if not text:
                raise BackendProtocolError("the model returned an empty reply", backend=model.name)
        except BackendError as exc:
            call.fail(exc)
            parts.append(guard.flush())
            status = MessageStatus.INCOMPLETE
            await self._settle(model, opened, inbound, parts, started, status, behaviour, speaker)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            parts.append(guard.flush())
            status = MessageStatus.CANCELLED
            await self._settle(model, opened, inbound, parts, started, status, behaviour, speaker)
            raise
        finally:
            call.end()

        latency_ms = (time.perf_counter() - started) * 1000
        usage = usage or Usage(prompt.tokens, model.count_tokens(text))
        reply = await self._store.append_message(
            conversation_id,
            NewMessage(
                role=Role.ASSISTANT,
                content=guard.stored(text),
                model=model.name,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                latency_ms=latency_ms,
                character_version=self._catalog.version_of(character),
                speaker=speaker,
                swipe_of=opened.swipe_of,  # a regenerate: shown instead of the earlier replies
            ),
        )
        yield MessageDone(
            conversation_id=conversation_id,
            message=reply,
            usage=usage,
            latency_ms=latency_ms,
            time_to_first_token_ms=(first_token_at - started) * 1000 if first_token_at else None,
            finish_reason=finish_reason,
        )

    async def _settle(
        self,
        model: ChatModel,
        opened: OpenedTurn,
        inbound: InboundMessage,
        parts: list[str],
        started: float,
        status: MessageStatus,
        behaviour: BehaviourTurn | None,
        speaker: str | None = None,
    ) -> None:
        """End a turn that did not complete: keep what the user saw, or leave no trace."""
        text = "".join(parts).strip()
        if not text:
            if not inbound.durable_ack:  # an acknowledged message stays, reply or not
                await self._shielded(self.discard(opened, behaviour))
            return
        partial = NewMessage(
            role=Role.ASSISTANT,
            content=text,
            status=status,
            model=model.name,
            completion_tokens=model.count_tokens(text),
            latency_ms=(time.perf_counter() - started) * 1000,
            speaker=speaker,
            swipe_of=opened.swipe_of,
        )
        await self._shielded(self._store.append_message(opened.conversation.id, partial))

    async def discard(self, opened: OpenedTurn, behaviour: BehaviourTurn | None) -> None:
        """Leave no trace of the turn: its behaviour step too (a new conversation's state
        goes with the conversation). A redo's message was there before: it stays."""
        if opened.reopened:
            return
        if behaviour is not None and not opened.created_conversation:
            await self._behaviour.undo(behaviour)
        await self._store.discard_turn(opened)

    async def _shielded(self, work: Awaitable[object]) -> None:
        # A cancelled caller must not lose the write: it runs as its own task and finishes
        # even if the caller is cancelled again while waiting for it.
        task = asyncio.ensure_future(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)
        await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for writes that outlived their cancelled turns (call before closing the store)."""
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
