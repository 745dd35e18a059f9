"""Lore in the prompt: where each entry lands, budgets, turns and macros."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from personae.core.characters import Character
from personae.core.lorebook import parse_book
from personae.core.prompt import LORE_SHARE, AssembledPrompt, PromptBudget, assemble_prompt
from personae.core.types import Message, Role
from personae.errors import ContextOverflow
from tests.core.lorebook_helpers import entry


def words(text: str) -> int:
    return len(text.split())


def chat(*texts: str) -> list[Message]:
    """Alternating messages, the character's greeting first."""
    now = datetime.now(UTC)
    return [
        Message(
            id=f"m{i}",
            conversation_id="c",
            seq=i,
            role=Role.ASSISTANT if i % 2 else Role.USER,
            content=text,
            created_at=now,
        )
        for i, text in enumerate(texts, start=1)
    ]


def character(*entries: dict[str, Any], **fields: Any) -> Character:
    book = {"entries": list(entries), "extensions": {}, "scan_depth": 4}
    book.update(fields.pop("book", {}))
    base: dict[str, Any] = {
        "id": "wren",
        "name": "Wren",
        "persona": "{{char}} tends the glass orchard.",
        "personality": "patient",
        "scenario": "A hailstorm.",
        "character_book": book,
    }
    return Character.model_validate(base | fields)


def assemble(
    who: Character, history: list[Message], text: str = "hello", tokens: int = 1000, **kw: Any
) -> AssembledPrompt:
    return assemble_prompt(
        who,
        history=history,
        user_text=text,
        user_name="Sam",
        budget=PromptBudget(context_tokens=tokens + 10, reply_tokens=10),
        count_tokens=words,
        **kw,
    )


def layout(prompt: AssembledPrompt) -> str:
    blocks = []
    for m in prompt.messages:
        speaker = f"{m.role.value} ({m.name})" if m.name else m.role.value
        blocks.append(f"--- {speaker}\n{m.content}")
    return "\n".join(blocks) + "\n"


SNAPSHOT = """\
--- system
You are Wren. Reply as Wren to Sam, staying in character, in a few sentences.

[before_char] The Glasshouse stands on the ribs of an airship. (constant)

Wren tends the glass orchard.

[after_desc] The orchard's trees are glass.

Wren's personality: patient
[personality] Wren hums when nervous.

Scenario: A hailstorm.
[scenario] The hail is worse than any year before.

[after_char, order 1] Sam owes Wren a favour.
[after_char, order 2] Hail cracks a pane every winter.
--- system
Example conversation:
Sam: hi
Wren: mind the seedlings
--- assistant (Wren)
Mind the seedlings, Sam.
--- system
[depth 4, system] Tern is a town of glassblowers.
--- user (Sam)
Is the orchard safe in hail?
--- assistant (Wren)
The glass trees ring but hold.
--- user
[depth 2, user] Sam is soaked.
--- assistant
[depth 2, assistant] Wren is worried.
--- user (Sam)
Tell me about Tern and its favour.
--- system
Wren never raises her voice.
--- system
Keep it short.
--- user (Sam)
Why is the hail so loud?
--- system
[depth 0] The hail is loud tonight.
"""


def test_snapshot_where_each_entry_lands() -> None:
    # Depth counts the conversation (4 history messages + the new one): depth 4 goes before
    # the second message, depth 1 (the character's note) before the post-history
    # instructions, depth 0 after the new message. The unmatched entry is nowhere.
    orchard = "orchard"
    who = character(
        entry(
            "before",
            keys=[],
            constant=True,
            content="[before_char] The Glasshouse stands on the ribs of an airship. (constant)",
        ),
        entry(
            "after_desc",
            keys=[orchard],
            content="@@position after_desc\n[after_desc] The orchard's trees are glass.",
        ),
        entry(
            "personality",
            keys=["hail"],
            content="@@position personality\n[personality] {{char}} hums when nervous.",
        ),
        entry(
            "scenario",
            keys=["hail"],
            content="@@position scenario\n[scenario] The hail is worse than any year before.",
        ),
        entry(
            "after-2",
            keys=["hail"],
            position="after_char",
            insertion_order=2,
            content="[after_char, order 2] Hail cracks a pane every winter.",
        ),
        entry(
            "after-1",
            keys=["favour"],
            position="after_char",
            insertion_order=1,
            content="[after_char, order 1] {{user}} owes {{char}} a favour.",
        ),
        entry(
            "tern",
            keys=["Tern"],
            content="@@depth 4\n[depth 4, system] Tern is a town of glassblowers.",
        ),
        entry(
            "soaked",
            keys=["hail"],
            content="@@depth 2\n@@role user\n[depth 2, user] {{user}} is soaked.",
        ),
        entry(
            "worried",
            keys=["hail"],
            content="@@depth 2\n@@role assistant\n[depth 2, assistant] {{char}} is worried.",
        ),
        entry("loud", keys=["loud"], content="@@depth 0\n[depth 0] The hail is loud tonight."),
        entry("unmatched", keys=["dragon"], content="Never in this prompt."),
        example_dialogues=("Sam: hi\nWren: mind the seedlings",),
        post_history_instructions="Keep it short.",
        extensions={
            "depth_prompt": {
                "prompt": "{{char}} never raises her voice.",
                "depth": 1,
                "role": "system",
            }
        },
    )
    history = chat(
        "Mind the seedlings, Sam.",
        "Is the orchard safe in hail?",
        "The glass trees ring but hold.",
        "Tell me about Tern and its favour.",
    )
    prompt = assemble(who, history, "Why is the hail so loud?")
    assert layout(prompt) == SNAPSHOT
    assert prompt.lore == (  # insertion order: the two ordered entries first
        "after-1",
        "after-2",
        "before",
        "after_desc",
        "personality",
        "scenario",
        "tern",
        "soaked",
        "worried",
        "loud",
    )
    assert sum(words(m.content) + 4 for m in prompt.messages) == prompt.tokens


def test_depth_lore_and_the_depth_prompt_share_a_depth_in_that_order() -> None:
    who = character(
        entry("lore", keys=[], constant=True, content="@@depth 1\nLore first."),
        extensions={"depth_prompt": {"prompt": "Note second.", "depth": 1}},
    )
    contents = [m.content for m in assemble(who, chat("hi", "there")).messages]
    assert contents[-3:] == ["Lore first.", "Note second.", "hello"]


def test_a_deep_entry_goes_before_the_oldest_message_kept() -> None:
    who = character(entry("deep", keys=[], constant=True, content="@@depth 99\nDeep."))
    contents = [m.content for m in assemble(who, chat("a", "b")).messages]
    assert contents[1:4] == ["Deep.", "a", "b"]


def test_a_section_position_falls_back_when_the_character_lacks_the_section() -> None:
    who = character(
        entry("p", keys=[], constant=True, content="@@position personality\n@@depth 1\nMood."),
        entry(
            "s",
            keys=[],
            constant=True,
            content="@@position scenario\nSetting.",
            position="after_char",
        ),
        personality="",
        scenario="",
    )
    prompt = assemble(who, chat("a"))
    assert prompt.messages[0].content.endswith("Wren tends the glass orchard.\n\nSetting.")
    assert [m.content for m in prompt.messages[-2:]] == ["Mood.", "hello"]


def test_lore_is_scanned_with_the_new_message_and_macros_in_content_are_expanded() -> None:
    who = character(entry("glass", keys=["{{char}}", "glass"], content="{{user}} trusts {{char}}."))
    prompt = assemble(who, chat("hi"), "what about the glass?")
    assert "Sam trusts Wren." in prompt.messages[0].content


def test_the_turn_is_counted_from_history_unless_given() -> None:
    who = character(entry("late", keys=[], constant=True, content="@@activate_only_after 3\nLate."))
    assert assemble(who, chat("g", "one", "r")).lore == ()  # turn 2
    assert assemble(who, chat("g", "one", "r", "two", "r")).lore == ("late",)  # turn 3
    assert assemble(who, chat("g"), turn=3).lore == ("late",)


def test_a_books_budget_drops_the_lowest_priority_first() -> None:
    who = character(
        entry("low", keys=[], constant=True, priority=1, content="low " * 10),
        entry("mid", keys=[], constant=True, priority=5, content="mid " * 10),
        entry("top", keys=[], constant=True, priority=9, content="top " * 10),
        book={"token_budget": 25},
    )
    prompt = assemble(who, chat("a"))
    assert prompt.lore == ("mid", "top")
    assert prompt.lore_dropped == 1


def test_lore_takes_at_most_its_share_of_the_prompt() -> None:
    who = character(
        entry("a", keys=[], constant=True, priority=2, content="a " * 100),
        entry("b", keys=[], constant=True, priority=1, content="b " * 100),
    )
    prompt = assemble(who, chat("x"), tokens=600)
    assert int(600 * LORE_SHARE) == 150
    assert prompt.lore == ("a",)
    assert prompt.lore_dropped == 1


def test_lore_goes_in_before_history_and_never_overflows_the_prompt() -> None:
    who = character(
        entry("big", keys=[], constant=True, priority=1, content="lore " * 30),
        entry("small", keys=[], constant=True, priority=9, content="lore " * 5),
    )
    history = chat(*(f"message {i}" for i in range(40)))
    roomy = assemble(who, history, tokens=400)
    assert roomy.lore == ("big", "small")
    tight = assemble(who, history, tokens=60)
    assert tight.lore == ("small",)  # big is over the lore's share (15 tokens) of 60
    assert tight.tokens <= 60
    assert tight.history_included < roomy.history_included
    assert sum(words(m.content) + 4 for m in tight.messages) == tight.tokens
    # Without lore the required parts alone decide an overflow, as before.
    with pytest.raises(ContextOverflow):
        assemble(who, history, tokens=15)


def test_attached_books_are_scanned_after_the_characters_own() -> None:
    atlas = parse_book({"name": "Atlas", "entries": [entry("map", content="From the atlas.")]})
    own = character(entry("map", content="From the card."), book={"name": "Card book"})
    both = own.with_lorebooks((atlas,))
    assert [b.name for b in both.books] == ["Card book", "Atlas"]
    system = assemble(both, chat("the map")).messages[0].content
    assert "From the card.\nFrom the atlas." in system


def test_an_attached_book_replaces_the_cards_own_book_of_the_same_name() -> None:
    live = parse_book({"name": "Tern", "entries": [entry("map", content="Live copy.")]})
    who = character(entry("map", content="Stale copy."), book={"name": "Tern"}).with_lorebooks(
        (live,)
    )
    assert [b.name for b in who.books] == ["Tern"]
    system = assemble(who, chat("the map")).messages[0].content
    assert "Live copy." in system
    assert "Stale copy." not in system
