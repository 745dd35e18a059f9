"""Prompt assembly under a token budget.

What goes in, in priority order when the budget is tight:

1. the system block (system prompt, persona, personality, scenario), any post-history
   instructions, the character's depth prompt and the new user message: always, or the turn
   fails with ``ContextOverflow``;
2. lorebook entries the recent chat activates (``core/lorebook``): each book within its own
   ``token_budget``, then all of them within ``LORE_SHARE`` of the prompt and the room left,
   the lowest priority dropped first;
3. recent history, newest first, so the oldest turns are the ones dropped;
4. example dialogues, whole ``<START>`` blocks in the order written, with whatever room is
   left: the last blocks are dropped first, and they all go before any history does (the
   Character Card specs ask that examples make way for the real conversation).

The assembled order is: system, examples, history, post-history instructions, user message.
Lore goes into the system block (before the persona, after it, on the personality or scenario
line, or after the scenario) or into the chat at a depth, with a role. Anything placed at a
depth (lore, the character's depth prompt) sits ``depth`` messages from the end of the chat
(history + user message), 0 meaning after the user message. A character's ``system_prompt``
and ``post_history_instructions`` replace the defaults when non-empty, ``{{original}}``
standing for the default. ``creator_notes``, ``tags``, ``creator`` and ``version`` never go
in. Tokens are counted with the backend's own tokenizer where it has one (``count_tokens``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from personae.core.characters import Character
from personae.core.lorebook import Position
from personae.core.lorebook.budget import keep_within
from personae.core.lorebook.lore import Arranged, Lore, activate, arrange
from personae.core.macros import expand
from personae.core.types import ChatMessage, Message, Role
from personae.errors import ContextOverflow

TokenCounter = Callable[[str], int]
LORE_SHARE = 0.25  # of the prompt, at most, for lore (SillyTavern's default budget)

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
    lore: tuple[str, ...] = ()  # labels of the lorebook entries included, in insertion order
    lore_dropped: int = 0  # activated entries left out by a budget
    knowledge: tuple[str, ...] = ()  # document chunks the memory note cites (guide.pdf#3)
    #: The seq of the newest stored message left out of the window (0: none): everything up
    #: to it has fallen out, which is what the rolling summary covers (core/memory/midterm.py).
    out_of_window_seq: int = 0


class _Filler:
    """Expands macros for one prompt, ``{{pick}}`` seeded per conversation. Without ``rng``,
    ``{{random}}`` and ``{{roll}}`` seed one of their own when they occur: seeding from the
    OS on every prompt would cost a system call for a macro most prompts lack."""

    def __init__(
        self, character: Character, user: str, rng: random.Random | None, seed: str
    ) -> None:
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
    turn: int | None = None,
) -> AssembledPrompt:
    """Build the prompt for the next reply. ``history`` is oldest first and excludes
    ``user_text``. ``pick_seed`` (the conversation id) keeps ``{{pick}}`` stable across turns;
    ``rng`` drives ``{{random}}`` and ``{{roll}}``. ``turn`` is the user's turn number (1 for
    the first message), for the lorebook's turn decorators; by default it is counted from
    ``history``."""
    fill = _Filler(character, user_name, rng, pick_seed)

    def cost(message: ChatMessage) -> int:
        return count_tokens(message.content) + budget.per_message_tokens

    parts = _SystemParts.of(character, fill, default_system_prompt)
    post_text = _override(character.post_history_instructions, default_post_history, fill)
    post = ChatMessage(Role.SYSTEM, post_text) if post_text else None
    depth = character.depth_prompt
    note = ChatMessage(depth.role, fill(depth.prompt)) if depth else None
    user = ChatMessage(Role.USER, user_text, name=user_name)
    fixed = [m for m in (post, note, user) if m is not None]
    used = cost(ChatMessage(Role.SYSTEM, parts.text())) + sum(cost(m) for m in fixed)
    if used > budget.prompt_tokens:
        raise ContextOverflow(
            f"the message needs {used} prompt tokens but only {budget.prompt_tokens} fit "
            f"the context of {budget.context_tokens} tokens after reserving "
            f"{budget.reply_tokens} for the reply",
            needed=used,
            available=budget.prompt_tokens,
        )

    lore, lore_dropped = activate(
        character.books,
        [*(m.content for m in history), user_text],
        turn=turn if turn is not None else 1 + sum(m.role is Role.USER for m in history),
        render=fill,
        count_tokens=count_tokens,
        missing=parts.missing,
    )
    system, arranged, used, over = _fit_lore(lore, parts, fixed, budget, cost)

    kept_history: list[ChatMessage] = []
    out_of_window_seq = history[0].seq - 1 if history else 0  # older ones were not even read
    for stored in reversed(history):
        candidate = _history_message(stored, character.name, user_name)
        price = cost(candidate)
        if used + price > budget.prompt_tokens:
            out_of_window_seq = stored.seq
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

    injections = [*arranged.at_depth, *([(depth.depth, note)] if depth and note else [])]
    return AssembledPrompt(
        messages=(system, *examples, *_conversation(kept_history, post, user, injections)),
        tokens=used,
        history_included=len(kept_history),
        history_dropped=len(history) - len(kept_history),
        examples_included=len(examples),
        examples_dropped=len(character.example_dialogues) - len(examples),
        lore=arranged.labels,
        lore_dropped=lore_dropped + over,
        out_of_window_seq=max(out_of_window_seq, 0),
    )


def greeting_text(
    character: Character,
    *,
    user_name: str,
    rng: random.Random | None = None,
    pick_seed: str = "",
    group: bool = False,
    index: int = 0,
) -> str | None:
    """The greeting ``index`` (0: the first, then the alternates) with its macros expanded, or
    None when the character has none. In a group chat (``group``) its first
    ``group_only_greetings`` entry comes first."""
    text = (character.group_only_greetings[:1] or [character.greeting])[0] if group else ""
    chosen = character.greetings[index] if 0 <= index < len(character.greetings) else None
    text = text or chosen
    if not text:
        return None
    return _Filler(character, user_name, rng, pick_seed)(text)


def _override(own: str, default: str, fill: _Filler) -> str:
    # The spec: a non-empty field replaces the default; an empty one falls back to it.
    return fill(own, original=default) if own.strip() else fill(default)


@dataclass(frozen=True, slots=True)
class _SystemParts:
    """The system block's parts, macros expanded once; lore slots in between."""

    system: str
    persona: str
    personality: str  # the whole line, "{{char}}'s personality: ..."
    scenario: str  # the whole line, "Scenario: ..."

    @classmethod
    def of(cls, character: Character, fill: _Filler, default: str) -> _SystemParts:
        c = character
        return cls(
            system=_override(c.system_prompt, default, fill),
            persona=fill(c.persona_text) if c.persona_text.strip() else "",
            personality=(
                f"{c.char_name}'s personality: {fill(c.personality)}"
                if c.personality.strip()
                else ""
            ),
            scenario=f"Scenario: {fill(c.scenario)}" if c.scenario.strip() else "",
        )

    @property
    def missing(self) -> frozenset[Position]:
        """Sections lore cannot be placed on, because the character has none."""
        absent = {Position.PERSONALITY: not self.personality, Position.SCENARIO: not self.scenario}
        return frozenset(position for position, gone in absent.items() if gone)

    def text(self, slots: Mapping[Position, str] | None = None) -> str:
        lore = slots or {}

        def line(text: str, position: Position) -> str:
            return f"{text}\n{lore[position]}" if text and position in lore else text

        parts = [
            self.system,
            lore.get(Position.BEFORE_CHAR, ""),
            self.persona,
            lore.get(Position.AFTER_DESC, ""),
            line(self.personality, Position.PERSONALITY),
            line(self.scenario, Position.SCENARIO),
            lore.get(Position.AFTER_CHAR, ""),
        ]
        return "\n\n".join(part for part in parts if part)


def _fit_lore(
    lore: list[Lore],
    parts: _SystemParts,
    fixed: list[ChatMessage],
    budget: PromptBudget,
    cost: Callable[[ChatMessage], int],
) -> tuple[ChatMessage, Arranged, int, int]:
    """The system message with the lore that fits, the lore's depth messages, the tokens
    used so far and how many entries did not fit."""
    base = sum(cost(m) for m in fixed)
    room = budget.prompt_tokens - base - cost(ChatMessage(Role.SYSTEM, parts.text()))
    share = int(budget.prompt_tokens * LORE_SHARE)

    def estimate(item: Lore) -> int:
        at_depth = item.placement.position is Position.DEPTH
        return item.tokens + (budget.per_message_tokens if at_depth else 1)

    kept, dropped = keep_within(lore, budget=min(room, share), cost=estimate, rank=Lore.rank)
    while True:
        arranged = arrange(kept)
        system = ChatMessage(Role.SYSTEM, parts.text(arranged.slots))
        used = base + cost(system) + sum(cost(m) for _, m in arranged.at_depth)
        # The estimate is per entry; a tokenizer may count the joined text a little higher.
        if used <= budget.prompt_tokens or not kept:
            return system, arranged, used, len(dropped)
        lowest = max(kept, key=Lore.rank)
        kept.remove(lowest)
        dropped.append(lowest)


def _conversation(
    history: list[ChatMessage],
    post: ChatMessage | None,
    user: ChatMessage,
    injections: Sequence[tuple[int, ChatMessage]],
) -> list[ChatMessage]:
    """History, post-history instructions and the user message, each injection ``depth``
    messages from the end. Depth counts history + user message only, so post-history
    instructions stay beside the user message they belong to; at one depth, injections keep
    their order."""
    span = len(history) + 1
    at: dict[int, list[ChatMessage]] = {}
    for depth, message in injections:
        at.setdefault(max(span - depth, 0), []).append(message)
    chat: list[ChatMessage] = []
    for index, message in enumerate(history):
        chat.extend(at.get(index, ()))
        chat.append(message)
    chat.extend(at.get(len(history), ()))
    chat.extend([post, user] if post else [user])
    chat.extend(at.get(span, ()))
    return chat


def _history_message(message: Message, char_name: str, user_name: str) -> ChatMessage:
    name = char_name if message.role is Role.ASSISTANT else user_name
    return ChatMessage(message.role, message.content, name=name)
