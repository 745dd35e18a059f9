"""Prompt assembly under a token budget.

What goes in, in priority order when the budget is tight:

1. the system block (system prompt, persona, scenario), any post-history instructions, and the
   new user message: always, or the turn fails with ``ContextOverflow``;
2. recent history, newest first, so the oldest turns are the ones dropped;
3. example dialogues, in order, with whatever room is left (dropped first, as the Character
   Card specs ask).

The assembled order is: system, examples, history, post-history instructions, user message.
Tokens are counted with the backend's own tokenizer where it has one (``count_tokens``).
"""

from __future__ import annotations

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


def assemble_prompt(
    character: Character,
    *,
    history: Sequence[Message],
    user_text: str,
    user_name: str,
    budget: PromptBudget,
    count_tokens: TokenCounter,
) -> AssembledPrompt:
    """Build the prompt for the next reply. ``history`` is oldest first and excludes
    ``user_text``."""

    def fill(text: str) -> str:
        return expand(text, char=character.name, user=user_name)

    def cost(message: ChatMessage) -> int:
        return count_tokens(message.content) + budget.per_message_tokens

    system = ChatMessage(Role.SYSTEM, _system_text(character, fill))
    post = (
        ChatMessage(Role.SYSTEM, fill(character.post_history_instructions))
        if character.post_history_instructions.strip()
        else None
    )
    user = ChatMessage(Role.USER, user_text, name=user_name)
    required = [system, user] + ([post] if post else [])
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
    for example in character.example_dialogues:
        candidate = ChatMessage(Role.SYSTEM, f"Example conversation:\n{fill(example).strip()}")
        price = cost(candidate)
        if used + price > budget.prompt_tokens:
            break
        examples.append(candidate)
        used += price

    messages = [system, *examples, *kept_history, *([post] if post else []), user]
    return AssembledPrompt(
        messages=tuple(messages),
        tokens=used,
        history_included=len(kept_history),
        history_dropped=len(history) - len(kept_history),
        examples_included=len(examples),
    )


def _system_text(character: Character, fill: Callable[[str], str]) -> str:
    parts = [fill(character.system_prompt.strip() or DEFAULT_SYSTEM_PROMPT)]
    if character.persona_text.strip():
        parts.append(fill(character.persona_text.strip()))
    if character.scenario.strip():
        parts.append(f"Scenario: {fill(character.scenario.strip())}")
    return "\n\n".join(parts)


def _history_message(message: Message, char_name: str, user_name: str) -> ChatMessage:
    name = char_name if message.role is Role.ASSISTANT else user_name
    return ChatMessage(message.role, message.content, name=name)
