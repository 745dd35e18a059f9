"""The terminal chat: read a line, stream the character's reply as it is generated.

Two ways to reach a character: a running server over the WebSocket protocol (with
``personae.client``, which reconnects and resumes if the connection drops), or an in-process
runtime on the local settings.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from contextlib import aclosing

from rich.console import Console
from rich.live import Live
from rich.text import Text

from personae.client import PersonaeClient
from personae.core.events import MessageAck, MessageDelta
from personae.core.service import ChatService
from personae.core.types import InboundMessage


class ChatTarget(abc.ABC):
    conversation_id: str | None = None

    @abc.abstractmethod
    def reply(self, text: str) -> AsyncIterator[str]:
        """Send ``text``; yield the reply's text as it arrives."""


class RemoteTarget(ChatTarget):
    def __init__(self, client: PersonaeClient, *, character: str) -> None:
        self._client = client
        self._character = character

    async def reply(self, text: str) -> AsyncIterator[str]:
        reply = await self._client.send(self._character, text, conversation=self.conversation_id)
        self.conversation_id = reply.conversation
        async for chunk in reply:
            yield chunk


class LocalTarget(ChatTarget):
    def __init__(self, service: ChatService, *, character: str, user: str) -> None:
        self._service = service
        self._character = character
        self._user = user

    async def reply(self, text: str) -> AsyncIterator[str]:
        inbound = InboundMessage(
            user=self._user,
            character_id=self._character,
            text=text,
            conversation_id=self.conversation_id,
            channel="cli",
        )
        async with aclosing(self._service.turn(inbound)) as events:
            async for event in events:
                if isinstance(event, MessageAck):
                    self.conversation_id = event.conversation.id
                elif isinstance(event, MessageDelta):
                    yield event.text


async def run_chat(target: ChatTarget, *, name: str, console: Console) -> None:
    console.print(
        f"[dim]Talking to[/dim] [bold]{name}[/bold]. [dim]/quit or Ctrl-D to leave.[/dim]"
    )
    while True:
        try:
            text = console.input("[bold cyan]you>[/bold cyan] ")
        except EOFError:
            console.print()
            return
        if text.strip() in {"/quit", "/exit"}:
            return
        if not text.strip():
            continue
        shown = Text(f"{name}> ", style="bold magenta")
        with Live(shown, console=console, refresh_per_second=20, transient=False):
            async for piece in target.reply(text):
                shown.append(piece)
