"""A conversation's recent messages kept between turns (storage/sqlite/message_windows.py):
reused when nothing held changed, read again when anything did, whoever changed it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlean

from personae.core.types import Message, NewMessage, OpenedTurn, Role
from personae.storage.sqlite import SqliteConversationStore
from personae.storage.sqlite.message_windows import MessageWindows, Window

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def texts(messages: list[Message]) -> list[str]:
    return [m.content for m in messages]


def on_disk(path: Path, conversation_id: str, limit: int) -> list[str]:
    """The newest ``limit`` visible messages, read straight from the file."""
    conn = sqlean.connect(str(path))
    try:
        rows = conn.execute(
            "SELECT content FROM messages WHERE conversation_id = ? AND hidden = 0"
            " ORDER BY seq DESC LIMIT ?",
            (conversation_id, limit),
        ).fetchall()
    finally:
        conn.close()
    return [row[0] for row in reversed(rows)]


def another_process(path: Path, sql: str, *args: object) -> None:
    """A write by another connection to the file: another worker, a command-line tool."""
    conn = sqlean.connect(str(path), isolation_level=None)
    try:
        conn.execute(sql, args)
    finally:
        conn.close()


async def chat(store: SqliteConversationStore, turns: int) -> OpenedTurn:
    opened = await store.open_turn(external_user_id="ada", character_id="mira", text="u0")
    await store.append_message(opened.conversation.id, NewMessage(Role.ASSISTANT, "a0"))
    for n in range(1, turns):
        opened = await store.open_turn(external_user_id="ada", character_id="mira", text=f"u{n}")
        await store.append_message(opened.conversation.id, NewMessage(Role.ASSISTANT, f"a{n}"))
    return opened


async def test_the_next_turn_reads_only_its_new_messages(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    windows = MessageWindows()
    async with SqliteConversationStore(path, windows=windows) as store:
        opened = await chat(store, 3)
        conversation = opened.conversation.id
        assert texts(await store.recent_messages(conversation, limit=4)) == ["u1", "a1", "u2", "a2"]
        assert (windows.read_whole, windows.reused) == (1, 0)
        for n in (3, 4):
            await store.open_turn(external_user_id="ada", character_id="mira", text=f"u{n}")
            got = texts(await store.recent_messages(conversation, limit=4))
            assert got == on_disk(path, conversation, 4)
            await store.append_message(conversation, NewMessage(Role.ASSISTANT, f"a{n}"))
        assert texts(await store.recent_messages(conversation, limit=4)) == ["u3", "a3", "u4", "a4"]
        # One whole read; each user message stored brought the window up to date (2), and
        # each read after it (3) read only what came since.
        assert (windows.read_whole, windows.reused) == (1, 5)


async def test_an_edit_or_a_deletion_by_anyone_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    windows = MessageWindows()
    async with SqliteConversationStore(path, windows=windows) as store:
        conversation = (await chat(store, 3)).conversation.id
        await store.recent_messages(conversation, limit=10)
        another_process(path, "UPDATE messages SET content = 'edited' WHERE content = 'u1'")
        assert texts(await store.recent_messages(conversation, limit=10)) == [
            "u0", "a0", "edited", "a1", "u2", "a2",
        ]  # fmt: skip
        another_process(path, "DELETE FROM messages WHERE content = 'a0'")
        assert texts(await store.recent_messages(conversation, limit=10)) == on_disk(
            path, conversation, 10
        )
        another_process(path, "UPDATE messages SET hidden = 1 WHERE content = 'a2'")
        assert texts(await store.recent_messages(conversation, limit=10)) == [
            "u0", "edited", "a1", "u2",
        ]  # fmt: skip
        assert windows.reused == 0


async def test_a_discarded_turn_leaves_no_message_behind(tmp_path: Path) -> None:
    # The window read during the turn holds its user message; the discard puts last_seq
    # back, so only the counter of deletions can tell that message is gone.
    path = tmp_path / "w.db"
    async with SqliteConversationStore(path) as store:
        conversation = (await chat(store, 2)).conversation.id
        turn = await store.open_turn(external_user_id="ada", character_id="mira", text="oops")
        assert texts(await store.recent_messages(conversation, limit=3)) == ["u1", "a1", "oops"]
        await store.discard_turn(turn)
        assert texts(await store.recent_messages(conversation, limit=3)) == ["a0", "u1", "a1"]
        await store.open_turn(external_user_id="ada", character_id="mira", text="again")
        assert texts(await store.recent_messages(conversation, limit=3)) == ["u1", "a1", "again"]


async def test_a_longer_read_or_many_new_messages_read_the_window_whole(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    windows = MessageWindows()
    async with SqliteConversationStore(path, windows=windows) as store:
        conversation = (await chat(store, 2)).conversation.id
        assert texts(await store.recent_messages(conversation, limit=2)) == ["u1", "a1"]
        got = await store.recent_messages(conversation, limit=10)
        assert texts(got) == ["u0", "a0", "u1", "a1"]  # the window kept held only 2
        for n in range(2, 6):  # 8 messages more, with a window of 3
            await store.open_turn(external_user_id="ada", character_id="mira", text=f"u{n}")
            await store.append_message(conversation, NewMessage(Role.ASSISTANT, f"a{n}"))
        assert texts(await store.recent_messages(conversation, limit=3)) == ["a4", "u5", "a5"]
        assert texts(await store.recent_messages(conversation, limit=0)) == []
        assert await store.recent_messages("no-such-conversation", limit=3) == []


async def test_a_shorter_read_does_not_shrink_the_window_a_longer_one_kept(tmp_path: Path) -> None:
    # The route chooser and the prompt ask for different numbers of messages each turn.
    path = tmp_path / "w.db"
    windows = MessageWindows()
    async with SqliteConversationStore(path, windows=windows) as store:
        conversation = (await chat(store, 3)).conversation.id
        assert len(await store.recent_messages(conversation, limit=10)) == 6
        await store.open_turn(external_user_id="ada", character_id="mira", text="u3")
        assert texts(await store.recent_messages(conversation, limit=2)) == ["a2", "u3"]
        assert texts(await store.recent_messages(conversation, limit=10)) == on_disk(
            path, conversation, 10
        )
        assert (windows.read_whole, windows.reused) == (1, 3)  # the open_turn's, the reads'


async def test_a_stored_user_message_brings_the_prompts_history_with_it(tmp_path: Path) -> None:
    # The window kept from the last read, and what came after it, read in the same
    # transaction that stored the message: the turn's prompt needs no read of its own.
    path = tmp_path / "w.db"
    async with SqliteConversationStore(path) as store:
        conversation = (await chat(store, 3)).conversation.id
        await store.recent_messages(conversation, limit=10)  # the last turn's prompt read
        opened = await store.open_turn(external_user_id="ada", character_id="mira", text="u3")

        assert opened.recent is not None
        assert [m.content for m in opened.recent] == on_disk(path, conversation, 10)
        assert opened.recent_complete  # 7 messages: every one the conversation has
        for limit in (0, 1, 4, 7, 10):
            newest = opened.newest(limit)
            assert newest is not None
            assert texts(newest) == on_disk(path, conversation, limit)


async def test_the_history_is_left_to_a_read_when_the_store_cannot_tell(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with SqliteConversationStore(path) as store:
        conversation = (await chat(store, 3)).conversation.id
        # No window kept (a conversation not read lately): nothing brought along.
        opened = await store.open_turn(external_user_id="ada", character_id="mira", text="u3")
        assert opened.recent is None
        assert opened.newest(1) is None

        # A short window: what it holds, and no more than it can tell.
        assert texts(await store.recent_messages(conversation, limit=3)) == ["u2", "a2", "u3"]
        await store.append_message(conversation, NewMessage(Role.ASSISTANT, "a3"))
        opened = await store.open_turn(external_user_id="ada", character_id="mira", text="u4")
        assert not opened.recent_complete
        newest = opened.newest(3)
        assert newest is not None
        assert texts(newest) == ["u3", "a3", "u4"]
        assert opened.newest(4) is None

        # Edited by someone else since the window was read: the counter says so.
        await store.recent_messages(conversation, limit=10)
        another_process(path, "UPDATE messages SET content = 'edited' WHERE content = 'u1'")
        opened = await store.open_turn(external_user_id="ada", character_id="mira", text="u5")
        assert opened.recent is None
        assert "edited" in texts(await store.recent_messages(conversation, limit=10))


def window(changed: int, last_seq: int, *contents: str) -> Window:
    messages = tuple(
        Message(f"m{n}", "c", n, Role.USER, text, NOW) for n, text in enumerate(contents, 1)
    )
    return Window(changed, last_seq, messages, complete=True, span=len(messages))


def test_the_least_recently_read_go_first_within_the_budget() -> None:
    windows = MessageWindows(max_chars=10)
    windows.put("a", window(0, 1, "aaaa"), reused=False)
    windows.put("b", window(0, 1, "bbbb"), reused=False)
    assert windows.get("a") is not None  # read: now b is the least recent
    windows.put("c", window(0, 1, "cccc"), reused=False)
    assert (windows.get("b"), len(windows), windows.chars) == (None, 2, 8)
    windows.put("huge", window(0, 1, "x" * 11), reused=False)  # over the budget alone
    assert (windows.get("huge"), len(windows)) == (None, 2)


def test_a_window_read_earlier_does_not_replace_a_later_one() -> None:
    windows = MessageWindows()
    later = window(1, 5, "new")
    windows.put("a", later, reused=False)
    windows.put("a", window(1, 4, "old"), reused=True)  # its read overlapped the later one
    windows.put("a", window(0, 9, "older"), reused=False)
    assert windows.get("a") is later
    windows.put("a", window(2, 3, "after a deletion"), reused=False)
    held = windows.get("a")
    assert held is not None
    assert held.changed == 2
