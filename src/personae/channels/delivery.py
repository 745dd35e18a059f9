"""A turn's events become platform messages: a typing indicator while the reply is written,
the reply streamed by edits where the platform allows it (throttled), and the final text,
split at sentence boundaries, handed to the durable outbox.

Streaming edits are a preview and best effort: a failed edit stops the preview, never the
reply. What the user must get, the final text, goes through the outbox, which retries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from personae.channels.errors import PlatformError, PlatformRateLimited
from personae.channels.outbox import OutboxWorker
from personae.channels.splitting import Measure, split_message
from personae.channels.throttle import EditThrottle
from personae.core.channels import NewOutboxItem
from personae.core.events import DELTA, DONE, ERROR, ConversationEvent
from personae.core.ports import Channel

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where a reply goes: the chat, the platform message it answers, and the stored user
    message whose events carry it (``reply_to`` in their payloads)."""

    chat: str
    reply_id: str
    platform_message: str | None = None


def measure_of(channel: Channel) -> Measure:
    found = getattr(channel, "measure", None)
    return found if callable(found) else len


class ReplyStreamer:
    def __init__(
        self,
        channel: Channel,
        worker: OutboxWorker,
        *,
        typing_interval_s: float = 4.0,
        throttle: Callable[[], EditThrottle] | None = None,
    ) -> None:
        self.channel = channel
        self.worker = worker
        self.typing_interval_s = typing_interval_s
        self._throttle = throttle or (lambda: EditThrottle(channel.min_edit_interval_s))
        self.edits_made = 0  # previews sent or edited, for tests and metrics

    async def deliver(self, target: ReplyTarget, events: AsyncIterator[ConversationEvent]) -> None:
        """Read the turn's events up to its end and hand the final text to the outbox."""
        preview = _Preview(self, target)
        await self._typing(target.chat)  # at once; the task repeats it while no text shows
        typing = asyncio.create_task(self._keep_typing(target.chat))
        final: str | None = None
        try:
            async for event in events:
                if event.payload.get("reply_to") != target.reply_id:
                    continue  # another turn of the same conversation (shared across channels)
                if event.event == DELTA:
                    preview.text += str(event.payload.get("text", ""))
                    if self.channel.edits and preview.text.strip():
                        typing.cancel()
                        await preview.update()
                elif event.event == DONE:
                    final = str(event.payload["message"]["content"])
                    break
                elif event.event == ERROR:
                    final = _error_text(preview.text, event.payload)
                    break
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        if final is not None:
            await self.worker.enqueue(
                self.parts(target, final, preview.message_id, shown=preview.shown)
            )

    def parts(
        self, target: ReplyTarget, text: str, streamed: str | None, *, shown: str = ""
    ) -> list[NewOutboxItem]:
        """The outbox items of a final text: the first part replaces the streamed preview
        (when there is one, and unless it already shows that part), the rest are new
        messages."""
        chunks = split_message(text, self.channel.max_chars, measure_of(self.channel)) or ["…"]
        items = []
        for index, chunk in enumerate(chunks):
            edit = index == 0 and streamed is not None
            if edit and chunk == shown:
                continue  # the preview already shows the final text
            items.append(
                NewOutboxItem(
                    channel=self.channel.name,
                    chat=target.chat,
                    text=chunk,
                    dedupe_key=f"{self.channel.name}:reply:{target.reply_id}:{index}",
                    action="edit" if edit else "send",
                    target=streamed if edit else None,
                    reply_to=target.platform_message if index == 0 else None,
                )
            )
        return items

    async def _keep_typing(self, chat: str) -> None:
        while True:
            await asyncio.sleep(self.typing_interval_s)
            await self._typing(chat)

    async def _typing(self, chat: str) -> None:
        try:
            await self.channel.typing(chat)
        except PlatformError as exc:  # cosmetic: never worth a retry
            log.debug("typing indicator failed", channel=self.channel.name, error=exc.code)


class _Preview:
    """The message a reply streams into: sent at the first text, then edited, throttled."""

    def __init__(self, streamer: ReplyStreamer, target: ReplyTarget) -> None:
        self.streamer = streamer
        self.target = target
        self.text = ""
        self.message_id: str | None = None
        self.shown = ""
        self.broken = False  # an edit failed for good: the outbox sends the final text
        self.throttle = streamer._throttle()

    async def update(self) -> None:
        if self.broken or not self.throttle.ready():
            return
        channel = self.streamer.channel
        chunks = split_message(self.text, channel.max_chars, measure_of(channel))
        visible = chunks[0] if chunks else ""
        if not visible or visible == self.shown:
            return
        try:
            if self.message_id is None:
                self.message_id = await channel.send(
                    self.target.chat, visible, reply_to=self.target.platform_message
                )
            else:
                await channel.edit(self.target.chat, self.message_id, visible)
        except PlatformRateLimited as exc:
            self.throttle.back_off(exc.retry_after)
            self.streamer.worker.hold(exc.retry_after)  # the final text waits as well
            return
        except PlatformError as exc:
            log.info("streaming preview stopped", channel=channel.name, error=exc.code)
            self.broken = True
            return
        self.shown = visible
        self.throttle.sent()
        self.streamer.edits_made += 1


def _error_text(partial: str, payload: dict[str, object]) -> str:
    if partial.strip():
        return f"{partial.rstrip()}\n\n(The reply was cut short.)"
    if payload.get("code") == "cancelled":
        return "(The reply was interrupted; please send your message again.)"
    return "Sorry, I could not answer just now. Please try again in a moment."
