"""Which backend serves a one-to-one turn, from what the turn needs (``routes.rules``):

- its kind: a message with code in it is ``code`` (``message_kind``), for a coding model;
- the context it needs: the character's fixed text, the recent history and the message,
  counted before any backend is chosen with a cheap counter (about four characters a
  token), for a long-context model. The prompt is then assembled for the chosen backend
  with that backend's own tokenizer and window, as before.

The history is read only when some rule names ``min_prompt_tokens``; otherwise choosing
costs no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from personae.core.characters import Character
from personae.core.ports import ChatModel, ConversationStore
from personae.core.routing import ModelRoutes
from personae.core.types import InboundMessage

CODE = "code"
#: Tokens a chat message costs beyond its text (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 4

_FENCE = re.compile(r"```|~~~")
# A line that reads like code in a common language; two of them make a message ``code``.
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from [\w.]+ import |#include|function |const |let |var "
    r"|public |private |fn |func |return |SELECT |INSERT |CREATE TABLE )"
    r"|[;{}]\s*$|^\s*\w+(?:\.\w+)*\(.*\)\s*$",
    re.MULTILINE,
)


def message_kind(text: str) -> str | None:
    """``code`` for a message with a fenced block or at least two lines of code; else None."""
    if _FENCE.search(text) or len(_CODE_LINE.findall(text)) >= 2:
        return CODE
    return None


def estimate_tokens(text: str) -> int:
    """About four characters a token: cheap, and the same rule prompts use for backends that
    have no tokenizer of their own."""
    return (len(text) + 3) // 4


def estimate_prompt_tokens(character: Character, history: Iterable[str], message: str) -> int:
    """The tokens a prompt for ``message`` needs to hold the character and the history."""
    fixed = (
        character.system_prompt,
        character.persona_text,
        character.personality,
        character.scenario,
        character.post_history_instructions,
    )
    texts = [*filter(None, fixed), *history, message]
    return sum(estimate_tokens(text) + MESSAGE_OVERHEAD_TOKENS for text in texts)


class RouteChooser:
    def __init__(self, routes: ModelRoutes, store: ConversationStore, *, history_messages: int):
        self._routes = routes
        self._store = store
        self._history_messages = history_messages

    async def choose(self, character: Character, inbound: InboundMessage) -> ChatModel:
        """The model whose route matches this turn's kind and size (else the character's)."""
        tokens = None
        if self._routes.sizes_prompts:
            history = await self._history(inbound, character.id)
            tokens = estimate_prompt_tokens(character, history, inbound.text)
        kind = message_kind(inbound.text)
        return self._routes.for_character(character, kind=kind, prompt_tokens=tokens)

    async def _history(self, inbound: InboundMessage, character_id: str) -> list[str]:
        """The texts of the conversation the turn continues (none for a new one)."""
        if inbound.new_conversation:
            return []
        conversation = inbound.conversation_id
        if conversation is None:  # the user's latest with the character
            user = await self._store.get_user(inbound.user)
            if user is None:
                return []
            latest = await self._store.list_conversations(
                user.id, character_id=character_id, limit=1
            )
            if not latest:
                return []
            conversation = latest[0].id
        recent = await self._store.recent_messages(conversation, limit=self._history_messages)
        return [message.content for message in recent]
