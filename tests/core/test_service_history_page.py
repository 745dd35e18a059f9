"""The history a one-to-one prompt is made of is read a page at a time (what the
conversation's last prompt kept and a margin, ``history_page`` when that is not known), and
the prompt is exactly the one the whole window gives: two services on one real SQLite store,
one reading the whole window every turn, hold the same conversations and must send the model
the same prompts, turn after turn, whether the budget cuts inside the page or everything
fits. A lorebook that scans deeper than the page, a regenerate and an edit keep the same
prompts too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.events import MessageDone, TurnEvent
from personae.core.prompt_stage import PAGE_MARGIN
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import (
    ChatMessage,
    GenerationParams,
    InboundMessage,
    Message,
    NewMessage,
    OpenedTurn,
    Redo,
    Role,
)
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel

BOOK = {
    "scan_depth": 12,  # deeper than the page of 4
    "entries": [
        {
            "keys": ["lighthouse"],
            "content": "The lighthouse of Veth burns whale oil.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 100,
        }
    ],
    "extensions": {},
}
MIRA = Character(id="mira", name="Mira", persona="Keeps a lighthouse.")
VERA = Character(id="vera", name="Vera", persona="A harbour pilot.", character_book=BOOK)


@dataclass
class Side:
    service: ChatService
    model: FakeChatModel
    user: str

    async def say(self, character: str, text: str, **fields: Any) -> MessageDone:
        inbound = InboundMessage(user=self.user, character_id=character, text=text, **fields)
        async with aclosing(self.service.turn(inbound)) as events:
            got: list[TurnEvent] = [event async for event in events]
        done = got[-1]
        assert isinstance(done, MessageDone)
        return done

    def last_prompt(self) -> tuple[ChatMessage, ...]:
        return self.model.requests[-1].messages


class CountingStore(SqliteConversationStore):
    """Counts the reads of recent messages. ``brings_history`` off, a stored user message
    comes without the history the store read with it, so that every prompt reads its own
    (the paging below is about those reads)."""

    def __init__(self, path: Path, *, brings_history: bool = False) -> None:
        super().__init__(path)
        self.brings_history = brings_history
        self.reads: dict[str, list[tuple[int, int]]] = {}

    async def open_turn(self, **fields: Any) -> OpenedTurn:
        opened = await super().open_turn(**fields)
        return opened if self.brings_history else replace(opened, recent=None)

    async def recent_messages(self, conversation_id: str, *, limit: int) -> list[Message]:
        found = await super().recent_messages(conversation_id, limit=limit)
        self.reads.setdefault(conversation_id, []).append((limit, len(found)))
        return found


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    async with CountingStore(tmp_path / "db.sqlite3") as opened:
        yield opened


def side(store: CountingStore, user: str, *, page: int, context: int) -> Side:
    # Words are tokens for the fake; each reply is ten words, each message costs 4 more.
    model = FakeChatModel(context_window=context, default_reply=" ".join(["word"] * 10))
    service = ChatService(
        catalog=CharacterCatalog([MIRA, VERA]),
        store=store,
        routes=ModelRoutes({"fake": model}, default="fake"),
        lock=LocalConversationLock(),
        settings=TurnSettings(
            history_messages=40,
            history_page=page,
            generation=GenerationParams(max_tokens=20),
        ),
    )
    return Side(service, model, user)


def without_ids(prompt: tuple[ChatMessage, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((m.role.value, m.content) for m in prompt)


@pytest.mark.parametrize("context", [80, 4096], ids=["cut-in-first-page", "all-fits"])
async def test_paged_prompts_are_the_whole_window_prompts(
    store: CountingStore, context: int
) -> None:
    paged = side(store, "ann", page=4, context=context)
    whole = side(store, "bob", page=10_000, context=context)
    for n in range(30):
        text = f"turn {n}: tell me about the lighthouse" if n % 7 == 3 else f"turn {n} words"
        for one in (paged, whole):
            await one.say("vera" if n % 2 else "mira", text)
        assert without_ids(paged.last_prompt()) == without_ids(whole.last_prompt())


@pytest.mark.parametrize("context", [80, 4096], ids=["cut-in-first-page", "all-fits"])
async def test_the_history_a_stored_message_brings_makes_the_same_prompts_without_reads(
    tmp_path: Path, context: int
) -> None:
    async with (
        CountingStore(tmp_path / "reads.sqlite3") as reading,
        CountingStore(tmp_path / "brings.sqlite3", brings_history=True) as bringing,
    ):
        reads = side(reading, "ann", page=4, context=context)
        brings = side(bringing, "ann", page=4, context=context)
        for n in range(30):
            text = f"turn {n}: tell me about the lighthouse" if n % 7 == 3 else f"turn {n} words"
            for one in (reads, brings):
                done = await one.say("vera" if n % 2 else "mira", text)
            assert without_ids(reads.last_prompt()) == without_ids(brings.last_prompt())
        read_turns = sum(len(r) for r in reading.reads.values())
        brought_turns = sum(len(r) for r in bringing.reads.values())
        assert read_turns >= 30  # every turn read
        # Reads left: each conversation's first turn (no window kept yet), and a turn whose
        # page is longer than the window kept while the conversation has more.
        assert brought_turns <= read_turns // 2, bringing.reads
        assert done.conversation_id in bringing.reads


async def test_each_turn_reads_what_the_last_prompt_kept_and_a_margin(
    store: CountingStore,
) -> None:
    tight = side(store, "ann", page=4, context=80)
    roomy = side(store, "bob", page=4, context=4096)
    for n in range(12):
        tight_done = await tight.say("mira", f"turn {n} words")
        roomy_done = await roomy.say("mira", f"turn {n} words")
    for done in (tight_done, roomy_done):
        reads = store.reads[done.conversation_id]
        assert len(reads) == 12  # one read a turn: never the page, then the window
        assert all(limit < 41 for limit, _ in reads)  # never the whole window either
    kept = tight.model.requests[-1].messages[1:-1]  # between the system block and the message
    assert store.reads[tight_done.conversation_id][-1] == (len(kept) + PAGE_MARGIN,) * 2


async def test_a_conversation_not_seen_lately_reads_a_page_then_the_window_if_it_fits(
    store: CountingStore,
) -> None:
    opened = await store.open_turn(external_user_id="ann", character_id="mira", text="hi")
    for n in range(20):
        await store.append_message(
            opened.conversation.id, NewMessage(Role.ASSISTANT if n % 2 else Role.USER, "w w")
        )
    roomy = side(store, "ann", page=4, context=4096)  # a new service: nothing remembered
    await roomy.say("mira", "and now?")
    await roomy.say("mira", "and then?")
    # 21 stored + "and now?": the page of 4 all fits, so the window is read (22 there); the
    # next turn reads the 21 kept + a margin of 8 and finds 24 (a reply and "and then?").
    assert store.reads[opened.conversation.id] == [(4, 4), (41, 22), (29, 24)]
    assert len(roomy.model.requests[-1].messages) == 1 + 23 + 1  # every message before fits


async def test_a_redo_sends_the_whole_window_prompt(store: CountingStore) -> None:
    paged = side(store, "ann", page=4, context=80)
    whole = side(store, "bob", page=10_000, context=80)
    done: dict[str, MessageDone] = {}
    for n in range(10):
        for one in (paged, whole):
            done[one.user] = await one.say("vera", f"turn {n} about the lighthouse")
    for redo, text in ((Redo.REGENERATE, ""), (Redo.EDIT, "edited: and the harbour?")):
        for one in (paged, whole):
            conversation = done[one.user].conversation_id
            done[one.user] = await one.say("vera", text, redo=redo, conversation_id=conversation)
        assert without_ids(paged.last_prompt()) == without_ids(whole.last_prompt())
