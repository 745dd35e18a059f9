"""What delivering a reminder does: the character's message in the conversation (so every
WebSocket watching it gets a ``message.done``, and the next turn's prompt holds it), and, when
the user set it from a chat platform, the same text through that channel's outbox.

Idempotent on the reminder's id, since a claim can be taken again after a crash: the stored
message is named ``reminder:<id>`` (its ``model``) and looked for first, and the outbox
refuses a second item with the same dedupe key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from personae.core.hub import ConversationHub
from personae.core.ports import ConversationStore
from personae.core.reminder_store import Reminder
from personae.core.types import NewMessage, Role

log = structlog.get_logger(__name__)

#: Sends ``text`` to ``chat`` on channel ``channel`` (durably: the outbox), deduplicated by
#: ``key``. Returns False when no such channel runs.
ChannelSend = Callable[[str, str, str, str], Awaitable[bool]]

#: How far back a re-delivery looks for the message an earlier attempt stored.
_RECENT = 50


def reminder_text(reminder: Reminder) -> str:
    return f"⏰ Reminder: {reminder.text}"


class ReminderPoster:
    def __init__(
        self,
        hub: ConversationHub,
        store: ConversationStore,
        *,
        channels: ChannelSend | None = None,
        count_tokens: Callable[[str], int] = lambda text: max(1, len(text) // 4),
    ) -> None:
        self._hub = hub
        self._store = store
        self._channels = channels
        self._count = count_tokens

    async def __call__(self, reminder: Reminder) -> None:
        text = reminder_text(reminder)
        model = f"reminder:{reminder.id}"
        if reminder.attempts <= 1 or not await self._posted(reminder, model):
            message = NewMessage(
                role=Role.ASSISTANT, content=text, model=model, completion_tokens=self._count(text)
            )
            await self._hub.post(
                reminder.user,
                reminder.character_id,
                reminder.conversation_id,
                message,
                reason="reminder",
            )
        if reminder.channel and reminder.chat and self._channels is not None:
            sent = await self._channels(reminder.channel, reminder.chat, text, model)
            if not sent:  # the channel was removed from the settings since
                log.warning("reminder channel not running", channel=reminder.channel)

    async def _posted(self, reminder: Reminder, model: str) -> bool:
        recent = await self._store.recent_messages(reminder.conversation_id, limit=_RECENT)
        return any(message.model == model for message in recent)
