"""The reminders skill in a chat service on real SQLite: setting, listing and cancelling by
command or in words, bad input, limits and options, and delivery by the dispatcher into the
conversation (events for every watcher) and the chat it was set from, once."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from personae.core.types import Role
from personae.skills.reminders import ReminderLimits
from personae.storage.sqlite.user_data import SqliteUserData
from tests.skills.reminder_rig import Rig, character


async def test_a_command_sets_a_reminder_without_the_model(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        reply, _ = await rig.say("/remind 10m stretch")
        assert re.fullmatch(
            r"OK, I will remind you to stretch at 12:10 \(UTC\), in 10 min\. \(id \w{6}\)", reply
        )
        (stored,) = await rig.reminders.pending("sam")
        assert (stored.text, stored.due_at) == ("stretch", rig.clock.now + timedelta(minutes=10))
        assert stored.short_id in reply
        assert rig.model.requests == []


async def test_a_due_reminder_is_posted_once_to_the_conversation(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        _, conversation = await rig.say("/remind 10m stretch")
        (reminder,) = await rig.reminders.pending("sam")
        assert await rig.dispatcher.tick() == 0  # not yet
        rig.clock.advance(minutes=10)
        assert await rig.dispatcher.tick() == 1
        assert await rig.dispatcher.tick() == 0  # never twice
        replies = await rig.replies(conversation)
        assert replies[-1] == ("⏰ Reminder: stretch", f"reminder:{reminder.id}")
        assert len([r for r in replies if r[0].startswith("⏰")]) == 1
        # A watching device gets it as an event of the conversation's log.
        events = await rig.events(conversation)
        done = events[-1]
        assert done.payload["finish_reason"] == "reminder"
        assert done.payload["message"]["content"] == "⏰ Reminder: stretch"
        assert done.payload["message"]["role"] == Role.ASSISTANT.value
        assert await rig.reminders.pending("sam") == []
        # The character knows it reminded: the next prompt holds the reminder.
        rig.model.enqueue("Did you stretch?")
        await rig.say("done")
        assert "⏰ Reminder: stretch" in [m.content for m in rig.model.requests[-1].messages]


async def test_a_claim_taken_again_after_a_crash_posts_nothing_twice(tmp_path: Path) -> None:
    sent: list[tuple[str, str, str, str]] = []
    async with Rig(tmp_path, sent=sent) as rig:
        _, conversation = await rig.say("/remind 1m stretch", channel="hook", chat="c1")
        rig.clock.advance(minutes=1)
        # A dispatcher claims it and delivers, then dies before it marks it delivered.
        (claimed,) = await rig.reminders.claim_due(rig.clock.now, lease_s=60)
        await rig.dispatcher._deliver(claimed)
        assert await rig.dispatcher.tick() == 0  # still within the lease
        rig.clock.advance(seconds=61)
        assert await rig.dispatcher.tick() == 1  # taken again after the lease
        replies = await rig.replies(conversation)
        assert [r for r in replies if r[0].startswith("⏰")] == [
            ("⏰ Reminder: stretch", f"reminder:{claimed.id}")
        ]
        assert sent == [("hook", "c1", "⏰ Reminder: stretch", f"reminder:{claimed.id}")]


async def test_a_reminder_set_from_a_chat_goes_back_to_that_chat(tmp_path: Path) -> None:
    sent: list[tuple[str, str, str, str]] = []
    async with Rig(tmp_path, sent=sent) as rig:
        await rig.say("/remind 5m call mum", channel="telegram", chat="chat-9")
        await rig.say("/remind 5m over http")
        rig.clock.advance(minutes=5)
        assert await rig.dispatcher.tick() == 2
        assert [(s[0], s[1], s[2]) for s in sent] == [
            ("telegram", "chat-9", "⏰ Reminder: call mum")
        ]


async def test_list_and_cancel(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        assert (await rig.say("/reminders"))[0] == "You have no reminders with me."
        await rig.say("/remind 2h water the plants")
        await rig.say("/remind 10m stretch")
        listed, _ = await rig.say("/reminders")
        stretch, plants = await rig.reminders.pending("sam")
        assert listed == (
            "Your reminders:\n"
            f"{stretch.short_id}: stretch, at 12:10 (UTC), in 10 min\n"
            f"{plants.short_id}: water the plants, at 14:00 (UTC), in 2 h"
        )
        assert (await rig.say("/remind list"))[0] == listed
        cancelled, _ = await rig.say(f"/remind cancel {stretch.short_id}")
        assert cancelled == "Cancelled: stretch."
        assert [r.id for r in await rig.reminders.pending("sam")] == [plants.id]
        rig.clock.advance(minutes=10)
        assert await rig.dispatcher.tick() == 0  # a cancelled reminder never fires


async def test_bad_input_is_a_clear_reply_and_stores_nothing(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        assert (await rig.say("/remind whenever you like"))[0] == (
            "Sorry, reminders failed: I could not tell when; write it like '/remind 10m stretch',"
            " '/remind in 2 hours call mum' or '/remind 18:30 tea'."
        )
        assert (await rig.say("/remind 10m"))[0].startswith(
            "Sorry, reminders failed: say what to remind you of"
        )
        assert (await rig.say("/remind cancel"))[0] == (
            "Sorry, reminders failed: say which reminder: /remind cancel <id> (/reminders lists"
            " them)."
        )
        assert (await rig.say("/remind cancel 123456"))[0] == (
            "Sorry, reminders failed: no waiting reminder has the id '123456'; /reminders lists"
            " them."
        )
        assert await rig.reminders.pending("sam") == []
        assert rig.model.requests == []


async def test_the_limit_per_user_and_a_characters_lower_one(tmp_path: Path) -> None:
    strict = character("bram", extensions={"skill_options": {"reminders": {"max_pending": 1}}})
    async with Rig(
        tmp_path, limits=ReminderLimits(max_pending=2), characters=[character(), strict]
    ) as rig:
        await rig.say("/remind 1h one", character_id="bram")
        refused, _ = await rig.say("/remind 1h two", character_id="bram")
        assert refused.startswith("Sorry, reminders failed: you have 1 reminders waiting")
        await rig.say("/remind 1h two")  # aria allows the server's 2
        refused, _ = await rig.say("/remind 1h three")
        assert "you have 2 reminders waiting, the most allowed" in refused
        assert len(await rig.reminders.pending("sam")) == 2


async def test_clock_times_use_the_characters_zone_option(tmp_path: Path) -> None:
    paris = character(extensions={"skill_options": {"reminders": {"timezone": "Europe/Paris"}}})
    async with Rig(tmp_path, characters=[paris]) as rig:
        reply, _ = await rig.say("/remind 18:30 call mum")
        assert reply.startswith(
            "OK, I will remind you to call mum at 18:30 (Europe/Paris), in 4 h 30 min."
        )
        (stored,) = await rig.reminders.pending("sam")
        assert stored.due_at == rig.clock.now + timedelta(hours=4, minutes=30)


async def test_asked_in_words_the_model_answers_knowing_it_is_set(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        rig.model.enqueue("Sure, I will.")
        reply, _ = await rig.say("Could you remind me in 20 minutes to take the cake out?")
        assert reply == "Sure, I will."
        (stored,) = await rig.reminders.pending("sam")
        assert stored.text == "take the cake out"
        notes = [m.content for m in rig.model.requests[0].messages if m.role is Role.SYSTEM]
        assert any('"text": "take the cake out"' in note for note in notes)
        # Words that only look like a request set nothing.
        rig.model.enqueue("We talked about the cake.")
        await rig.say("remind me what we talked about")
        assert len(await rig.reminders.pending("sam")) == 1


async def test_erasing_the_user_takes_their_reminders_with_it(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        await rig.say("/remind 1m stretch")
        async with SqliteUserData(rig.store_path) as users:
            await users.erase_user("sam")
        rig.clock.advance(minutes=1)
        assert await rig.dispatcher.tick() == 0
        assert await rig.reminders.next_due_at() is None
