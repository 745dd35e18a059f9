import random
from datetime import UTC, datetime
from typing import Any

import pytest

from personae.core.characters import Character
from personae.core.prompt import AssembledPrompt, PromptBudget, assemble_prompt, greeting_text
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


# --- Character Card field semantics ------------------------------------------------------------

SENTINELS = ("SENTINEL-NOTES", "SENTINEL-TAG", "SENTINEL-CREATOR", "SENTINEL-VERSION")


def card_character(**fields: object) -> Character:
    base: dict[str, object] = {
        "id": "wren",
        "name": "Wren Halloway",
        "persona": "{{char}} tends the glass orchard.",
        "creator_notes": "SENTINEL-NOTES for people",
        "creator_notes_multilingual": {"fr": "SENTINEL-NOTES en français"},
        "tags": ("SENTINEL-TAG",),
        "creator": "SENTINEL-CREATOR",
        "version": "SENTINEL-VERSION",
        "sources": ("https://example.invalid/SENTINEL-TAG",),
        "group_only_greetings": ("SENTINEL-NOTES group hello",),
    }
    return Character.model_validate(base | fields)


def assemble_card(
    character: Character, n_history: int = 2, prompt_tokens: int = 1000, **kw: Any
) -> AssembledPrompt:
    return assemble_prompt(
        character,
        history=history(n_history),
        user_text="hello",
        user_name="Sam",
        budget=PromptBudget(context_tokens=prompt_tokens + 10, reply_tokens=10),
        count_tokens=words,
        **kw,
    )


def text_of(prompt: AssembledPrompt) -> str:
    return "\n".join(m.content for m in prompt.messages)


def test_fields_for_people_never_reach_the_prompt() -> None:
    prompt = assemble_card(card_character(greetings=("hi",), example_dialogues=("A: b",)))
    for sentinel in SENTINELS:
        assert sentinel not in text_of(prompt)
    assert "Wren Halloway tends the glass orchard." in text_of(prompt)


def test_the_character_system_prompt_replaces_the_default_and_original_brings_it_back() -> None:
    own = assemble_card(card_character(system_prompt="Be {{char}}, a gardener."))
    assert own.messages[0].content.startswith("Be Wren Halloway, a gardener.")
    assert "You are" not in own.messages[0].content
    extended = assemble_card(card_character(system_prompt="{{original}} Present tense."))
    assert extended.messages[0].content.startswith(
        "You are Wren Halloway. Reply as Wren Halloway to Sam, staying in character, in a few "
        "sentences. Present tense."
    )
    blank = assemble_card(card_character(system_prompt="   "))
    assert blank.messages[0].content.startswith("You are Wren Halloway.")


def test_post_history_instructions_override_the_default_with_original() -> None:
    def post(prompt: AssembledPrompt) -> str:
        return prompt.messages[-2].content

    assert post(assemble_card(card_character(), default_post_history="Be vivid.")) == "Be vivid."
    own = card_character(post_history_instructions="{{original}} Under 80 words, {{user}}.")
    assert post(assemble_card(own, default_post_history="Be vivid.")) == (
        "Be vivid. Under 80 words, Sam."
    )
    assert post(assemble_card(own)) == "Under 80 words, Sam."


def test_personality_and_nickname_reach_the_system_block() -> None:
    prompt = assemble_card(card_character(nickname="Wren", personality="patient, dry"))
    system = prompt.messages[0].content
    assert "You are Wren. Reply as Wren to Sam" in system
    assert "Wren tends the glass orchard." in system
    assert "Wren's personality: patient, dry" in system


def test_example_blocks_split_on_start_and_drop_whole_last_first() -> None:
    blocks = "<START>\nSam: one\nWren: 1\n<START>\nSam: two\nWren: 2\n<START>\nSam: three\nWren: 3"
    character = card_character(example_dialogues=(blocks,))
    assert len(character.example_dialogues) == 3
    roomy = assemble_card(character, n_history=0)
    assert roomy.examples_included == 3
    examples = [m.content for m in roomy.messages if m.content.startswith("Example")]
    assert examples == [f"Example conversation:\n{b}" for b in character.example_dialogues]
    # One token short of room for the next block: the last blocks go first, whole.
    costs = [words(e) + 4 for e in examples]
    base = roomy.tokens - sum(costs)
    for kept in (2, 1, 0):
        room = base + sum(costs[: kept + 1]) - 1
        tight = assemble_card(character, n_history=0, prompt_tokens=room)
        shown = [m.content for m in tight.messages if m.content.startswith("Example")]
        assert shown == examples[:kept]
        assert (tight.examples_included, tight.examples_dropped) == (kept, 3 - kept)


def test_examples_go_before_any_history_does() -> None:
    character = card_character(example_dialogues=("Sam: hi\nWren: hello",))
    prompt = assemble_card(character, n_history=30, prompt_tokens=120)
    assert prompt.examples_included == 0
    assert prompt.history_dropped > 0
    assert prompt.history_included > 0


@pytest.mark.parametrize(
    ("depth", "index_from_end"),
    [(0, 0), (1, 2), (2, 3), (4, 5)],  # counted over history + user; post stays beside user
)
def test_the_depth_prompt_sits_depth_messages_from_the_end(depth: int, index_from_end: int) -> None:
    note = {"prompt": "{{char}} never shouts.", "depth": depth, "role": "system"}
    character = card_character(
        extensions={"depth_prompt": note}, post_history_instructions="Be brief."
    )
    prompt = assemble_card(character, n_history=6)
    contents = [m.content for m in prompt.messages]
    position = contents.index("Wren Halloway never shouts.")
    assert len(contents) - 1 - position == index_from_end
    assert contents[-2:] in (["Be brief.", "hello"], ["hello", "Wren Halloway never shouts."])
    assert contents.count("Be brief.") == 1


def test_a_deep_depth_prompt_goes_before_the_oldest_history_and_keeps_its_role() -> None:
    note = {"prompt": "A note.", "depth": 99, "role": "user"}
    prompt = assemble_card(card_character(extensions={"depth_prompt": note}), n_history=3)
    assert prompt.messages[1].content == "A note."
    assert prompt.messages[1].role is Role.USER
    assert prompt.messages[2].content == "message number 1"


def test_the_depth_prompt_is_required_like_the_system_block() -> None:
    note = {"prompt": " ".join(["word"] * 50), "depth": 1}
    with pytest.raises(ContextOverflow):
        assemble_card(card_character(extensions={"depth_prompt": note}), prompt_tokens=40)
    empty = {"prompt": "", "depth": 4, "role": "system"}  # as SillyTavern writes it by default
    assert card_character(extensions={"depth_prompt": empty}).depth_prompt is None


def test_macros_in_the_prompt_use_the_rng_and_the_pick_seed() -> None:
    character = card_character(
        scenario="{{random:rain,snow,hail,fog,sun,wind}} and {{pick:a,b,c,d,e,f,g,h}} {{// x}}"
    )

    def scenario(**kw: Any) -> str:
        return assemble_card(character, **kw).messages[0].content.rsplit("Scenario: ", 1)[1]

    first = scenario(rng=random.Random(3), pick_seed="conv-1")
    assert first == scenario(rng=random.Random(3), pick_seed="conv-1")
    assert "{{" not in first
    picks = {scenario(rng=random.Random(n), pick_seed="conv-1").split(" and ")[1] for n in range(9)}
    assert len(picks) == 1  # the pick holds across turns of one conversation
    weathers = {scenario(rng=random.Random(n), pick_seed="conv-1").split(" ")[0] for n in range(30)}
    assert len(weathers) > 1


def test_greeting_text_expands_macros_with_the_nickname() -> None:
    character = card_character(nickname="Wren", greetings=("{{char}} waves at {{user}}.",))
    assert greeting_text(character, user_name="Sam") == "Wren waves at Sam."
    assert greeting_text(card_character(), user_name="Sam") is None
