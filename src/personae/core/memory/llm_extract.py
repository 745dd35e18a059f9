"""The LLM fact extractor: durable facts and preferences the user stated (name, likes,
relationships, promises) read by the configured model from a batch of the user's messages.

It works beside the rule-based extractor (``core.memory.extract``), which keeps running on
every message. The model answers in a fixed JSON shape (``ExtractedFacts``); an answer with an
unknown kind, a value that is not a short one-line string, or any key the shape does not name
is refused whole, asked again once, then skipped (``core.memory.structured``). The model only
names the kind and the value: the sentence stored is written here, in the same words as the
rule-based extractor's, so the profile keeps the newest value of each kind whoever found it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from personae.core.memory.capture import FACT_PREFIX
from personae.core.memory.items import NewMemory, Partition
from personae.core.memory.structured import StructuredAsk
from personae.core.ports import ChatModel
from personae.core.types import ChatMessage, Message, Role

MAX_FACTS = 20  # in one answer
MAX_VALUE_CHARS = 80  # a fact is a short value, not a paragraph

#: One line, not blank, short: a name, a place, a thing liked.
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_VALUE_CHARS),
    Field(pattern=r"^[^\n\r]+$"),
]
Relation = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z][A-Za-z -]{0,29}$"),
]


class LlmFactKind(enum.StrEnum):
    NAME = "name"
    LOCATION = "location"
    AGE = "age"
    BIRTHDAY = "birthday"
    LIKE = "like"
    DISLIKE = "dislike"
    RELATIONSHIP = "relationship"
    PROMISE = "promise"


class ExtractedFact(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    kind: LlmFactKind
    value: ShortText
    relation: Relation | None = None  # RELATIONSHIP only: "sister", "dog", ...

    @model_validator(mode="after")
    def _relation_for_relationships(self) -> ExtractedFact:
        if (self.kind is LlmFactKind.RELATIONSHIP) != (self.relation is not None):
            raise ValueError("'relation' is given for kind 'relationship' and only for it")
        if self.kind is LlmFactKind.AGE and not (
            self.value.isdigit() and 0 < int(self.value) < 130
        ):
            raise ValueError("an age is a whole number of years")
        return self


class ExtractedFacts(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    facts: list[ExtractedFact] = Field(max_length=MAX_FACTS)


ASK = StructuredAsk(ExtractedFacts, max_tokens=400)

INSTRUCTION = (
    "You read a user's messages to a character and list the durable facts the user states "
    "about themselves: their name, where they live, their age, birthday, what they like or "
    "dislike, the people and animals in their life (kind 'relationship', with 'relation' such "
    "as 'sister' or 'dog' and the name as value) and promises made (kind 'promise', the value "
    "says who promised what). Only facts the user states as true now; nothing guessed, no "
    "questions. An empty list when there are none."
)

_IMPORTANCE = {
    LlmFactKind.NAME: 0.95,
    LlmFactKind.BIRTHDAY: 0.9,
    LlmFactKind.RELATIONSHIP: 0.85,
    LlmFactKind.PROMISE: 0.85,
    LlmFactKind.LOCATION: 0.8,
    LlmFactKind.AGE: 0.8,
    LlmFactKind.LIKE: 0.7,
    LlmFactKind.DISLIKE: 0.7,
}


def statement(fact: ExtractedFact) -> str:
    """The sentence stored for ``fact``: the rule-based extractor's wording for its kinds."""
    value = fact.value.rstrip(".!")
    match fact.kind:
        case LlmFactKind.NAME:
            return f"The user's name is {value}."
        case LlmFactKind.LOCATION:
            return f"The user lives in {value}."
        case LlmFactKind.AGE:
            return f"The user is {value} years old."
        case LlmFactKind.BIRTHDAY:
            return f"The user's birthday is on {value}."
        case LlmFactKind.LIKE:
            return f"The user likes {value}."
        case LlmFactKind.DISLIKE:
            return f"The user does not like {value}."
        case LlmFactKind.RELATIONSHIP:
            return f"The user's {fact.relation} is {value}."
        case LlmFactKind.PROMISE:
            return f"Promise: {value}."


def item_kind(fact: ExtractedFact) -> str:
    """``fact:<kind>``, the relation included (``fact:relationship:sister``), as capture's."""
    about = f"{fact.kind}:{fact.relation}" if fact.relation else str(fact.kind)
    return FACT_PREFIX + about


class LlmFactExtractor:
    def __init__(self, model: ChatModel, *, ask: StructuredAsk[ExtractedFacts] = ASK) -> None:
        self._model = model
        self._ask = ask

    async def extract(
        self, partition: Partition, messages: Sequence[Message]
    ) -> list[NewMemory] | None:
        """Fact items from the user's ``messages`` (others are ignored), each citing every
        message of the batch; None when the model's answers were malformed (skipped)."""
        said = [m for m in messages if m.role is Role.USER and m.content.strip()]
        if not said:
            return []
        lines = "\n".join(f"- {m.content}" for m in said)
        answer = await self._ask.ask(
            self._model,
            [
                ChatMessage(Role.SYSTEM, INSTRUCTION),
                ChatMessage(Role.USER, f"The user's messages:\n{lines}"),
            ],
            what="facts",
        )
        if answer is None:
            return None
        sources = tuple(m.id for m in said)
        seen: set[tuple[str, str]] = set()
        items: list[NewMemory] = []
        for fact in answer.facts:
            kind, text = item_kind(fact), statement(fact)
            if (kind, text.casefold()) in seen:
                continue
            seen.add((kind, text.casefold()))
            items.append(
                NewMemory(
                    partition,
                    text,
                    said[-1].created_at,
                    kind,
                    _IMPORTANCE[fact.kind],
                    sources,
                )
            )
        return items
