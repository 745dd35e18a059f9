"""The terminal chat: read a line, stream the character's reply as it is generated.

Two ways to reach a character: a running server through its OpenAI-compatible API (the real
``openai`` client), or an in-process runtime on the local settings.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from contextlib import aclosing

from openai import AsyncOpenAI
from rich.console import Console
from rich.live import Live
from rich.text import Text

from personae.core.events import MessageAck, MessageDelta
from personae.core.service import ChatService
from personae.core.types import InboundMessage

CONVERSATION_HEADER = "X-Personae-Conversation"


class ChatTarget(abc.ABC):
    conversation_id: str | None = None

    @abc.abstractmethod
    def reply(self, text: str) -> AsyncIterator[str]:
        """Send ``text``; yield the reply's text as it arrives."""


class RemoteTarget(ChatTarget):
    def __init__(self, client: AsyncOpenAI, *, character: str, user: str) -> None:
        self._client = client
        self._character = character
        self._user = user

    async def reply(self, text: str) -> AsyncIterator[str]:
        headers = {CONVERSATION_HEADER: self.conversation_id} if self.conversation_id else {}
        async with self._client.chat.completions.with_streaming_response.create(
            model=self._character,
            messages=[{"role": "user", "content": text}],
            user=self._user,
            stream=True,
            extra_headers=headers,
        ) as response:
            self.conversation_id = response.headers.get(CONVERSATION_HEADER)
            async for chunk in await response.parse():
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content


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
