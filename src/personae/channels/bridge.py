"""An inbound platform message becomes a turn on the ``ConversationHub``, the same path a
WebSocket message takes, and the turn's events become the reply on the platform.

Per message: chat commands (``/link``, ``/character``, ``/new``, ``/help``) are answered here
(any other command goes to the character, whose skills may know it: ``/remind``); otherwise
the sender is mapped to a Personae user (``identity``), a character is chosen
(``routing``), the conversation is the chat's own (``scope: chat``) or the user's latest with
the character (``scope: shared``), and the message is sent with the platform message id as
idempotency key, so a redelivered update never makes a second turn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import structlog

from personae.channels.delivery import ReplyStreamer, ReplyTarget
from personae.channels.identity import Identities
from personae.channels.outbox import OutboxWorker, utc_now
from personae.channels.routing import Command, Persona, choose_character, parse_command
from personae.core.catalog import CharacterCatalog
from personae.core.channels import ChannelDirectory, NewOutboxItem, PendingReply, PlatformMessage
from personae.core.hub import ConversationHub
from personae.core.ports import Channel
from personae.core.types import InboundMessage
from personae.errors import (
    CharacterNotFound,
    ConversationNotFound,
    InvalidInput,
    NotFound,
    Overloaded,
    PersonaeError,
)

log = structlog.get_logger(__name__)

ConversationScope = Literal["chat", "shared"]
_FRESH = ""  # a chat conversation marked "start a new one with the next message" (/new)

HELP = (
    "Talk to me here. Commands: /character <name> picks who answers in this chat, /new starts"
    " a new conversation, /link <code> links this chat to your Personae account."
)


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """How one channel maps chats to characters and conversations."""

    default_character: str | None = None
    bindings: Mapping[str, str] = field(default_factory=dict)  # chat -> character (settings)
    scope: ConversationScope = "chat"


class ChannelBridge:
    def __init__(
        self,
        *,
        channel: Channel,
        hub: ConversationHub,
        catalog: CharacterCatalog,
        directory: ChannelDirectory,
        identities: Identities,
        worker: OutboxWorker,
        streamer: ReplyStreamer,
        policy: ChannelPolicy,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.channel = channel
        self.hub = hub
        self.catalog = catalog
        self.directory = directory
        self.identities = identities
        self.worker = worker
        self.streamer = streamer
        self.policy = policy
        self._now = now

    @property
    def platform(self) -> str:
        return self.channel.name

    async def handle(self, message: PlatformMessage) -> None:
        """Answer one inbound message; every failure ends as a log line or a reply, never
        as an exception that could stop the channel."""
        try:
            command = parse_command(message.text)
            if command is not None:
                await self._command(message, command)
            else:
                await self._turn(message)
        except PersonaeError as exc:
            log.warning("channel message failed", channel=self.platform, code=exc.code)
            await self._say(message, _refusal(exc), "refusal")

    async def _turn(self, message: PlatformMessage) -> None:
        character = choose_character(
            message,
            bound=await self.directory.binding(self.platform, message.chat)
            or self.policy.bindings.get(message.chat),
            default=self.policy.default_character,
            personas=self._personas(),
        )
        if character is None:
            if not message.group:
                await self._say(message, "No character answers here yet. " + HELP, "unrouted")
            return
        user = await self.identities.user_for(self.platform, message.platform_user)
        conversation = await self.directory.chat_conversation(
            self.platform, message.chat, user, character
        )
        fresh = conversation == _FRESH or (conversation is None and self.policy.scope == "chat")
        inbound = InboundMessage(
            user=user,
            character_id=character,
            text=message.text,
            conversation_id=None if fresh else conversation,
            new_conversation=fresh,
            channel=self.platform,
            chat=message.chat,  # where the character's later messages go (reminders)
            idempotency_key=_idempotency_key(self.platform, message),
        )
        try:
            accepted = await self.hub.send(inbound)
        except ConversationNotFound:  # the conversation was deleted: start again
            await self.directory.set_chat_conversation(
                self.platform, message.chat, user, character, None
            )
            raise
        if fresh or conversation is None:
            keep = accepted.conversation_id if self.policy.scope == "chat" else None
            await self.directory.set_chat_conversation(
                self.platform, message.chat, user, character, keep
            )
        if accepted.ack_seq is None:  # a redelivered update: its turn exists already
            return
        pending = PendingReply(
            channel=self.platform,
            chat=message.chat,
            user=user,
            conversation_id=accepted.conversation_id,
            reply_to=accepted.message_id,
            after_seq=accepted.ack_seq,
            platform_message=message.message_id,
        )
        await self.directory.add_pending_reply(pending)
        await self.deliver(pending)

    async def deliver(self, pending: PendingReply) -> None:
        """Follow the turn's events to its end, give the reply to the outbox, forget it."""
        target = ReplyTarget(pending.chat, pending.reply_to, pending.platform_message)
        async with self.hub.watch(
            pending.conversation_id, pending.user, after_seq=pending.after_seq
        ) as events:
            await self.streamer.deliver(target, events)
        await self.directory.remove_pending_reply(self.platform, pending.reply_to)

    async def resume(self) -> None:
        """After a restart: deliver the replies of turns started before it."""
        for pending in await self.directory.pending_replies(self.platform):
            try:
                await self.deliver(pending)
            except NotFound:  # the conversation or user was erased meanwhile
                await self.directory.remove_pending_reply(self.platform, pending.reply_to)

    async def _command(self, message: PlatformMessage, command: Command) -> None:
        if command.name == "link":
            await self._say(message, await self._link(message, command.argument), "link")
        elif command.name == "character":
            await self._say(message, await self._pick(message, command.argument), "character")
        elif command.name == "new":
            user = await self.identities.user_for(self.platform, message.platform_user)
            for persona in self._personas():
                await self.directory.set_chat_conversation(
                    self.platform, message.chat, user, persona.id, _FRESH
                )
            await self._say(message, "Starting a new conversation.", "new")
        elif command.name in ("start", "help"):
            await self._say(message, HELP, "help")
        else:  # the character's skills may know it (/remind, /roll, ...), else the model
            await self._turn(message)

    async def _link(self, message: PlatformMessage, code: str) -> str:
        if not code:
            return "Send /link followed by the code your Personae account gave you."
        user = await self.identities.redeem(self.platform, message.platform_user, code)
        if user is None:
            return "That code is unknown or has expired; ask for a new one."
        return "Linked: this chat now shares your account's conversations and memory."

    async def _pick(self, message: PlatformMessage, wanted: str) -> str:
        names = ", ".join(sorted(p.id for p in self._personas()))
        if not wanted:
            return f"Characters: {names}. Send /character <name> to pick one."
        found = next(
            (
                p.id
                for p in self._personas()
                if wanted.lower() in (p.id.lower(), *(n.lower() for n in p.names))
            ),
            None,
        )
        if found is None:
            return f"There is no character {wanted!r}. Characters: {names}."
        await self.directory.bind(self.platform, message.chat, found)
        return f"{self.catalog.get(found).name} answers in this chat now."

    async def _say(self, message: PlatformMessage, text: str, kind: str) -> None:
        """A short answer of our own, through the outbox like any reply."""
        key = message.message_id or f"{self._now().timestamp()}"
        await self.worker.enqueue(
            [
                NewOutboxItem(
                    channel=self.platform,
                    chat=message.chat,
                    text=text[: self.channel.max_chars],
                    dedupe_key=f"{self.platform}:{kind}:{message.chat}:{key}",
                    reply_to=message.message_id,
                )
            ]
        )

    def _personas(self) -> list[Persona]:
        return [
            Persona(c.id, tuple(n for n in (c.name, c.nickname) if n)) for c in self.catalog.all()
        ]


def _idempotency_key(platform: str, message: PlatformMessage) -> str | None:
    if message.message_id is None:
        return None
    return f"channel:{platform}:{message.chat}:{message.message_id}"


def _refusal(exc: PersonaeError) -> str:
    if isinstance(exc, Overloaded):
        return "I am busy right now; please send that again in a little while."
    if isinstance(exc, CharacterNotFound):
        return "That character is not available any more; pick another with /character."
    if isinstance(exc, InvalidInput):
        return f"I cannot take that message: {exc.message}"
    return "Sorry, something went wrong; please try again."
