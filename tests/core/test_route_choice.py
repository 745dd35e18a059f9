"""Choosing the backend by what a turn needs: code goes to the coding route, a prompt that
needs a long context (a long message, or a long conversation read from the real store) to
the long-context route, anything else to the default; without size rules nothing is read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from personae.core.characters import Character
from personae.core.route_choice import (
    CODE,
    RouteChooser,
    estimate_prompt_tokens,
    estimate_tokens,
    message_kind,
)
from personae.core.routing import ModelRoutes, RouteRule
from personae.core.types import InboundMessage, NewMessage, Role
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel

ARIA = Character(id="aria", name="Aria", persona="A navigator. " * 10)
MODELS = {name: FakeChatModel(name=name) for name in ("small", "coder", "long")}
RULES = [
    RouteRule(chain=("coder",), name="code", kinds=frozenset({CODE})),
    RouteRule(chain=("long",), name="long", min_prompt_tokens=400),
]


@pytest.mark.parametrize(
    "text",
    [
        "Why does this fail?\n```python\nprint(1/0)\n```",
        "~~~\nSELECT 1;\n~~~",
        "def add(a, b):\n    return a + b",
        "int main() {\n  return 0;\n}",
        "const x = 1;\nconsole.log(x);",
    ],
)
def test_code_is_recognised(text: str) -> None:
    assert message_kind(text) == CODE


@pytest.mark.parametrize(
    "text",
    [
        "Where to, navigator?",
        "I like cats; and dogs.",
        "Let me tell you about my day (it was long).\nThen I slept.",
        "",
    ],
)
def test_prose_is_not_code(text: str) -> None:
    assert message_kind(text) is None


def test_the_estimate_counts_four_characters_a_token() -> None:
    assert [estimate_tokens(t) for t in ("", "abc", "abcd", "abcde")] == [0, 1, 1, 2]
    bare = Character(id="bare", name="Bare")
    assert estimate_prompt_tokens(bare, [], "abcd") == 1 + 4
    assert estimate_prompt_tokens(bare, ["abcdefgh"], "abcd") == (2 + 4) + (1 + 4)
    assert estimate_prompt_tokens(ARIA, [], "abcd") > estimate_prompt_tokens(bare, [], "abcd")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteConversationStore]:
    async with SqliteConversationStore(tmp_path / "routes.sqlite3") as opened:
        yield opened


def chooser(store: SqliteConversationStore, rules: list[RouteRule] = RULES) -> RouteChooser:
    routes = ModelRoutes(MODELS, default="small", rules=rules)
    return RouteChooser(routes, store, history_messages=200)


def inbound(text: str, user: str = "sam", **extra: object) -> InboundMessage:
    return InboundMessage(user=user, character_id="aria", text=text, **extra)  # type: ignore[arg-type]


async def test_code_goes_to_the_coding_model(store: SqliteConversationStore) -> None:
    model = await chooser(store).choose(ARIA, inbound("Fix it:\n```\nx = 1/0\n```"))
    assert model.name == "coder"


async def test_a_short_message_goes_to_the_default(store: SqliteConversationStore) -> None:
    assert (await chooser(store).choose(ARIA, inbound("Hello"))).name == "small"


async def test_a_long_message_needs_the_long_context_model(store: SqliteConversationStore) -> None:
    assert (await chooser(store).choose(ARIA, inbound("word " * 400))).name == "long"


async def test_a_long_conversation_needs_it_too(store: SqliteConversationStore) -> None:
    opened = await store.open_turn(external_user_id="sam", character_id="aria", text="Hi")
    conversation = opened.conversation.id
    for _ in range(10):
        await store.append_message(conversation, NewMessage(Role.ASSISTANT, "A long answer. " * 12))
    choose = chooser(store).choose
    assert (await choose(ARIA, inbound("Hello"))).name == "long"  # the latest conversation
    named = inbound("Hello", conversation_id=conversation)
    assert (await choose(ARIA, named)).name == "long"
    fresh = inbound("Hello", new_conversation=True)
    assert (await choose(ARIA, fresh)).name == "small"
    assert (await choose(ARIA, inbound("Hello", user="eve"))).name == "small"  # not hers


async def test_without_size_rules_nothing_is_read(tmp_path: Path) -> None:
    closed = SqliteConversationStore(tmp_path / "never-opened.sqlite3")  # a read would fail
    only_code = [RULES[0]]
    assert (await chooser(closed, only_code).choose(ARIA, inbound("word " * 400))).name == "small"
    assert (await chooser(closed, only_code).choose(ARIA, inbound("```\nx\n```"))).name == "coder"


def test_routes_say_whether_they_size_prompts() -> None:
    assert ModelRoutes(MODELS, default="small", rules=RULES).sizes_prompts
    assert not ModelRoutes(MODELS, default="small", rules=RULES[:1]).sizes_prompts
