"""What a device missed, then what happens live: the stored log, the running turn's buffer
(here, or on the bus when it runs on another node), then the bus, each event once, in seq
order, with no gap even when the bus lost some."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from personae.core.events import ConversationEvent, expand
from personae.core.live_turn import LiveTurn
from personae.core.ports import ConversationStore, EventBus

PAGE = 500  # stored event records read per query

Running = Callable[[], LiveTurn | None]  # the conversation's turn running here, if any


class EventReplay:
    def __init__(self, store: ConversationStore, bus: EventBus) -> None:
        self._store = store
        self._bus = bus

    async def then_live(
        self,
        conversation_id: str,
        after_seq: int,
        live: AsyncIterator[ConversationEvent],
        running: Running,
    ) -> AsyncIterator[ConversationEvent]:
        """``live`` must be subscribed before this starts, so nothing falls between."""
        last = after_seq
        async for event in self.missed(conversation_id, running, after_seq=last):
            yield event
            last = event.seq
        async for event in live:
            if event.seq > last + 1:  # the bus lost some (Redis was away): fill the gap
                async for missed in self.missed(
                    conversation_id, running, after_seq=last, before_seq=event.seq
                ):
                    yield missed
                    last = missed.seq
            if event.seq > last:
                yield event
                last = event.seq

    async def missed(
        self,
        conversation_id: str,
        running: Running,
        *,
        after_seq: int,
        before_seq: int | None = None,
    ) -> AsyncIterator[ConversationEvent]:
        """The events after ``after_seq`` (and before ``before_seq``) from the stored log,
        then from the running turn's buffer. The buffer is read before the store: whatever it
        held that is stored by the time the store is read shows up there, and whatever comes
        later arrives live."""
        turn = running()
        if turn is not None:
            buffered = list(turn.events)
        else:  # maybe running on another node: its deltas are on the bus until it ends
            buffered = await self._bus.recent(conversation_id, after_seq=after_seq)
        last = after_seq
        end = before_seq if before_seq is not None else float("inf")
        while True:
            page = await self._store.list_events(conversation_id, after_seq=last, limit=PAGE)
            before = last
            for record in page:
                for event in expand(conversation_id, record):
                    if last < event.seq < end:
                        yield event
                        last = event.seq
            if len(page) < PAGE or last == before:  # the end, or past ``before_seq``
                break
        for event in buffered:
            if last < event.seq < end:
                yield event
                last = event.seq
