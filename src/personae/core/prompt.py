"""Prompt assembly under a token budget.

What goes in, in priority order when the budget is tight:

1. the system block (system prompt, persona, personality, scenario), any post-history
   instructions, the character's depth prompt and the new user message: always, or the turn
   fails with ``ContextOverflow``;
2. recent history, newest first, so the oldest turns are the ones dropped;
3. example dialogues, whole ``<START>`` blocks in the order written, with whatever room is
   left: the last blocks are dropped first, and they all go before any history does (the
   Character Card specs ask that examples make way for the real conversation).

The assembled order is: system, examples, history, post-history instructions, user message;
the depth prompt sits ``depth`` messages from the end of the chat (history + user message),
0 meaning after the user message. A character's ``system_prompt`` and
``post_history_instructions`` replace the defaults when non-empty, ``{{original}}`` standing
for the default. ``creator_notes``, ``tags``, ``creator`` and ``version`` never go in.
Tokens are counted with the backend's own tokenizer where it has one (``count_tokens``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from personae.core.characters import Character
from personae.core.macros import expand
from personae.core.types import ChatMessage, Message, Role
from personae.errors import ContextOverflow

TokenCounter = Callable[[str], int]

DEFAULT_SYSTEM_PROMPT = (
    "You are {{char}}. Reply as {{char}} to {{user}}, staying in character, in a few sentences."
)


@dataclass(frozen=True, slots=True)
class PromptBudget:
    context_tokens: int  # the model's whole context window
    reply_tokens: int  # kept free for the reply
    per_message_tokens: int = 4  # role markers and separators each message costs

    @property
    def prompt_tokens(self) -> int:
        return self.context_tokens - self.reply_tokens


@dataclass(frozen=True, slots=True)
class AssembledPrompt:
    messages: tuple[ChatMessage, ...]
    tokens: int
    history_included: int
    history_dropped: int
    examples_included: int
    examples_dropped: int = 0


class _Filler:
    """Expands macros for one prompt: one random source, ``{{pick}}`` seeded per conversation."""

    def __init__(self, character: Character, user: str, rng: random.Random, seed: str) -> None:
        self._char, self._user, self._rng, self._seed = character.char_name, user, rng, seed

    def __call__(self, text: str, original: str = "") -> str:
        return expand(
            text,
            char=self._char,
            user=self._user,
            original=original,
            rng=self._rng,
            pick_seed=self._seed,
        ).strip()


def assemble_prompt(
    character: Character,
    *,
    history: Sequence[Message],
    user_text: str,
    user_name: str,
    budget: PromptBudget,
    count_tokens: TokenCounter,
    pick_seed: str = "",
    rng: random.Random | None = None,
    default_system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    default_post_history: str = "",
) -> AssembledPrompt:
    """Build the prompt for the next reply. ``history`` is oldest first and excludes
    ``user_text``. ``pick_seed`` (the conversation id) keeps ``{{pick}}`` stable across turns;
    ``rng`` drives ``{{random}}`` and ``{{roll}}``."""
    fill = _Filler(character, user_name, rng or random.Random(), pick_seed)

    def cost(message: ChatMessage) -> int:
        return count_tokens(message.content) + budget.per_message_tokens

    system = ChatMessage(Role.SYSTEM, _system_text(character, fill, default_system_prompt))
    post_text = _override(character.post_history_instructions, default_post_history, fill)
    post = ChatMessage(Role.SYSTEM, post_text) if post_text else None
    depth = character.depth_prompt
    injected = ChatMessage(depth.role, fill(depth.prompt)) if depth else None
    user = ChatMessage(Role.USER, user_text, name=user_name)
    required = [m for m in (system, post, injected, user) if m is not None]
    used = sum(cost(m) for m in required)
    if used > budget.prompt_tokens:
        raise ContextOverflow(
            f"the message needs {used} prompt tokens but only {budget.prompt_tokens} fit "
            f"the context of {budget.context_tokens} tokens after reserving "
            f"{budget.reply_tokens} for the reply",
            needed=used,
            available=budget.prompt_tokens,
        )

    kept_history: list[ChatMessage] = []
    for stored in reversed(history):
        candidate = _history_message(stored, character.name, user_name)
        price = cost(candidate)
        if used + price > budget.prompt_tokens:
            break
        kept_history.append(candidate)
        used += price
    kept_history.reverse()

    examples: list[ChatMessage] = []
    for block in character.example_dialogues:
        candidate = ChatMessage(Role.SYSTEM, f"Example conversation:\n{fill(block)}")
        price = cost(candidate)
        if used + price > budget.prompt_tokens:
            break  # a prefix of the blocks: the last ones are dropped first
        examples.append(candidate)
        used += price

    chat = [*kept_history, *([post] if post else []), user]
    if injected is not None and depth is not None:
        # Counted over the conversation only, so post-history instructions stay beside the
        # user message they belong to.
        position = max(len(kept_history) + 1 - depth.depth, 0)
        if position == len(kept_history) + 1:
            chat.append(injected)
        else:
            chat.insert(position, injected)
    return AssembledPrompt(
        messages=(system, *examples, *chat),
        tokens=used,
        history_included=len(kept_history),
        history_dropped=len(history) - len(kept_history),
        examples_included=len(examples),
        examples_dropped=len(character.example_dialogues) - len(examples),
    )


def greeting_text(
    character: Character, *, user_name: str, rng: random.Random | None = None, pick_seed: str = ""
) -> str | None:
    """The first greeting with its macros expanded, or None when the character has none."""
    if not character.greeting:
        return None
    return _Filler(character, user_name, rng or random.Random(), pick_seed)(character.greeting)


def _override(own: str, default: str, fill: _Filler) -> str:
    # The spec: a non-empty field replaces the default; an empty one falls back to it.
    return fill(own, original=default) if own.strip() else fill(default)


def _system_text(character: Character, fill: _Filler, default: str) -> str:
    parts = [_override(character.system_prompt, default, fill)]
    if character.persona_text.strip():
        parts.append(fill(character.persona_text))
    if character.personality.strip():
        parts.append(f"{character.char_name}'s personality: {fill(character.personality)}")
    if character.scenario.strip():
        parts.append(f"Scenario: {fill(character.scenario)}")
    return "\n\n".join(part for part in parts if part)


def _history_message(message: Message, char_name: str, user_name: str) -> ChatMessage:
    name = char_name if message.role is Role.ASSISTANT else user_name
    return ChatMessage(message.role, message.content, name=name)
