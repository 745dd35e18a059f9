from datetime import UTC, datetime

import pytest

from personae.core.characters import Character
from personae.core.prompt import PromptBudget, assemble_prompt
from personae.core.types import Message, Role
from personae.errors import ContextOverflow


def words(text: str) -> int:
    return len(text.split())


CHARACTER = Character(
    id="aria",
    name="Aria",
    persona="{{char}} is a navigator who calls {{user}} captain.",
    scenario="On the bridge.",
    example_dialogues=("{{user}}: Hi\n{{char}}: Hello captain",),
    post_history_instructions="Stay brief.",
)


def history(n: int) -> list[Message]:
    now = datetime.now(UTC)
    return [
        Message(
            id=f"m{i}",
            conversation_id="c",
            seq=i,
            role=Role.USER if i % 2 else Role.ASSISTANT,
            content=f"message number {i}",
            created_at=now,
        )
        for i in range(1, n + 1)
    ]


def assemble(n_history: int, prompt_tokens: int):  # type: ignore[no-untyped-def]
    return assemble_prompt(
        CHARACTER,
        history=history(n_history),
        user_text="where to next",
        user_name="Sam",
        budget=PromptBudget(context_tokens=prompt_tokens + 10, reply_tokens=10),
        count_tokens=words,
    )


def test_layout_is_system_examples_history_post_instructions_user() -> None:
    prompt = assemble(2, prompt_tokens=1000)
    roles = [(m.role, m.content.split("\n")[0]) for m in prompt.messages]
    assert roles[0][0] is Role.SYSTEM
    assert "Aria is a navigator who calls Sam captain." in prompt.messages[0].content
    assert "Scenario: On the bridge." in prompt.messages[0].content
    assert roles[1] == (Role.SYSTEM, "Example conversation:")
    assert "Sam: Hi\nAria: Hello captain" in prompt.messages[1].content
    assert [m.content for m in prompt.messages[2:4]] == ["message number 1", "message number 2"]
    assert prompt.messages[4] == prompt.messages[4].__class__(Role.SYSTEM, "Stay brief.")
    assert prompt.messages[-1].role is Role.USER
    assert prompt.messages[-1].content == "where to next"
    assert prompt.messages[-1].name == "Sam"


def test_oldest_history_is_dropped_first_and_budget_holds() -> None:
    budget_tokens = 80
    prompt = assemble(30, prompt_tokens=budget_tokens)
    assert prompt.tokens <= budget_tokens
    kept = [m.content for m in prompt.messages if m.content.startswith("message number")]
    assert kept, "some history must fit"
    assert kept[-1] == "message number 30"
    numbers = [int(c.rsplit(" ", 1)[1]) for c in kept]
    assert numbers == list(range(31 - len(kept), 31)), "a contiguous run of the newest"
    assert prompt.history_dropped == 30 - len(kept)
    # The real count agrees with the reported one.
    assert sum(words(m.content) + 4 for m in prompt.messages) == prompt.tokens


def test_examples_are_dropped_before_history() -> None:
    prompt = assemble(30, prompt_tokens=80)
    assert prompt.examples_included == 0
    roomy = assemble(2, prompt_tokens=1000)
    assert roomy.examples_included == 1


def test_a_message_that_cannot_fit_alone_is_a_context_overflow() -> None:
    with pytest.raises(ContextOverflow) as caught:
        assemble(0, prompt_tokens=5)
    assert caught.value.context["available"] == 5
    assert "reserving 10 for the reply" in str(caught.value)


def test_default_system_prompt_names_the_character() -> None:
    prompt = assemble_prompt(
        Character(id="kit", name="Kit"),
        history=[],
        user_text="hi",
        user_name="Sam",
        budget=PromptBudget(context_tokens=200, reply_tokens=20),
        count_tokens=words,
    )
    assert prompt.messages[0].content.startswith("You are Kit.")
    assert len(prompt.messages) == 2
