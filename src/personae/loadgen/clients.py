"""What the runner needs of a transport: the characters on offer and one turn at a time per
user. ``http_client.py`` and ``ws_client.py`` implement it."""

from __future__ import annotations

from typing import Protocol

from personae.loadgen.outcome import TurnOutcome


class TurnClient(Protocol):
    async def characters(self) -> list[str]:
        """The ids the server offers (its ``/v1/models``)."""
        ...

    async def turn(self, user: str, character: str, text: str) -> TurnOutcome:
        """Send one message as ``user`` and wait for the whole reply. Never raises for a failed
        turn: the outcome names the error. The runner never runs two turns of a user at once."""
        ...

    async def forget(self, user: str) -> None:
        """Drop what is kept for ``user`` (its connection) after a turn that timed out."""
        ...

    async def aclose(self) -> None: ...
