"""The prompt stage of a turn: which version of the character speaks, and its prompt under
the token budget (``core/prompt.py``) from the conversation's history.

A one-to-one prompt reads the newest page of the window first: the budget is nearly always
spent long before the window's end, and every message read is a row turned into an object.
The page is what the conversation's last prompt kept and a turn's worth more, remembered for
the conversations seen lately. Only when the whole page fits are older messages read too; the
prompt is then the one the whole window gives (lore scans only the newest ``scan_depth``
messages, the turn number comes from the store). A group's prompt reads the whole window.
"""

from __future__ import annotations

from collections.abc import Mapping

from personae.core.catalog import CharacterCatalog
from personae.core.characters import Character
from personae.core.group import group_history
from personae.core.memory.stage import PromptMemory
from personae.core.ports import ChatModel, ConversationStore
from personae.core.prompt import AssembledPrompt, PromptBudget, assemble_prompt
from personae.core.recent_counts import RecentCounts
from personae.core.types import GenerationParams, Message, OpenedTurn

PAGE_MARGIN = 8  # messages read beyond what the last prompt kept: a turn adds two
KEPT_CONVERSATIONS = 10_000  # conversations whose last prompt size is remembered


class PromptStage:
    """``history_messages``: how many stored messages the window holds; ``history_page``: how
    many a one-to-one prompt reads first for a conversation not seen lately;
    ``context_tokens``: the budget for a backend that does not know its context window.
    ``memory`` reserves room for its note beside the reply's tokens."""

    def __init__(
        self,
        store: ConversationStore,
        catalog: CharacterCatalog,
        memory: PromptMemory,
        *,
        history_messages: int,
        history_page: int,
        context_tokens: int,
        user_name: str,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._memory = memory
        self._history_messages = history_messages
        self._history_page = history_page
        self._context_tokens = context_tokens
        self._user_name = user_name
        self._kept = RecentCounts(KEPT_CONVERSATIONS)  # history each prompt kept, lately

    async def pinned(self, character: Character, opened: OpenedTurn) -> Character:
        """The version that wrote the conversation's latest reply, while the catalog keeps
        it, else the current one (the backend stays the one routed for the current one)."""
        recent = await self._recent(opened, self._history_messages + 1)
        used = next((m.character_version for m in reversed(recent) if m.character_version), None)
        if character.id in self._catalog:  # else it was removed just now: finish with this one
            character = self._catalog.for_conversation(character.id, used)
        return character

    async def assemble(
        self,
        character: Character,
        model: ChatModel,
        opened: OpenedTurn,
        text: str,
        params: GenerationParams,
        names: Mapping[str, str] | None = None,
    ) -> AssembledPrompt:
        """The prompt for ``character``'s reply to ``text``. With ``names`` (a group: who is
        who), the whole shared history as this character sees it, and ``text`` the nudge."""
        window = self._history_messages + 1
        page = window if names is not None else self._first_page(character, opened, window)
        whole, prompt = await self._assemble_from(
            character, model, opened, text, params, names, page
        )
        if not whole:
            whole, prompt = await self._assemble_from(
                character, model, opened, text, params, names, window
            )
        if names is None:
            self._kept.remember(opened.conversation.id, prompt.history_included)
        return prompt

    def _first_page(self, character: Character, opened: OpenedTurn, window: int) -> int:
        """As many messages as the conversation's last prompt kept and a turn's worth more
        (``history_page`` for a conversation not seen lately), and at least what its
        lorebooks scan."""
        if opened.user_turn <= 0:  # the lorebook would count turns from the history
            return window
        kept = self._kept.get(opened.conversation.id)
        page = self._history_page if kept is None else kept + PAGE_MARGIN
        return min(window, max(page, _scanned(character) + 2))

    async def _assemble_from(
        self,
        character: Character,
        model: ChatModel,
        opened: OpenedTurn,
        text: str,
        params: GenerationParams,
        names: Mapping[str, str] | None,
        limit: int,
    ) -> tuple[bool, AssembledPrompt]:
        """The prompt from the newest ``limit`` messages, and whether it is the prompt the
        whole window gives: the conversation has no more, or the budget was spent before
        the oldest message read and every message the lorebooks scan was read."""
        recent = await self._recent(opened, limit)
        if names is None:  # what came before the message answered (a redo's: not its replies)
            history = [m for m in recent if m.seq < opened.message.seq]
        else:
            history = group_history(recent, character.id, names)
        prompt = assemble_prompt(
            character,
            history=history,
            user_text=text,
            user_name=self._user_name,
            budget=PromptBudget(
                context_tokens=model.context_window or self._context_tokens,
                reply_tokens=params.max_tokens + self._memory.reserved_tokens,  # + its note
            ),
            count_tokens=model.count_tokens,
            pick_seed=opened.conversation.id,  # {{pick:...}} stays the same all conversation
            turn=opened.user_turn or None,  # the lorebook's @@activate_only_after / _every
        )
        whole = (
            len(recent) < limit
            or limit > self._history_messages
            or (prompt.history_dropped > 0 and len(history) >= _scanned(character))
        )
        return whole, prompt

    async def _recent(self, opened: OpenedTurn, limit: int) -> list[Message]:
        """The newest ``limit`` messages: as the store saw them when it stored the turn's
        message, or read now."""
        recent = opened.newest(limit)
        if recent is None:
            recent = await self._store.recent_messages(opened.conversation.id, limit=limit)
        return recent


def _scanned(character: Character) -> int:
    """How many of the newest messages the character's lorebooks scan, at most."""
    return max((book.scan_depth for book in character.books), default=0)
