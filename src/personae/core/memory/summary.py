"""The rolling summary: what a conversation said before its history window, in a few
sentences the prompt always carries (a system note after the persona, before the history).

The summary is rewritten in code at set moments (``core.memory.midterm``), never left to the
model's goodwill: the model is given the summary so far and the messages that fell out of the
window since, and answers ``{"summary": "..."}``; an answer that is not that shape, is blank
or is over the summary's token budget is refused, asked again once, then skipped
(``core.memory.structured``). The summary and how far it reaches (``summarized_seq``) live in
the conversation's state (``ConversationStore.get_state``), with the LLM fact extractor's
position beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from personae.core.memory.structured import StructuredAsk
from personae.core.ports import ChatModel
from personae.core.prompt import AssembledPrompt
from personae.core.types import ChatMessage, Message, MessageStatus, Role

CountTokens = Callable[[str], int]

STATE_KEY = "memory.midterm"  # the conversation state holding the summary and positions
SUMMARY_HEADING = "Summary of the conversation so far (older than the messages below):"
CUT_MARK = " [...]"

INSTRUCTION = (
    "You keep the running summary of a conversation between a user and a character. Rewrite "
    "the summary so far to also cover the new messages: who the user is, what happened, what "
    "was decided or promised, feelings that matter. Third person, plain sentences, at most "
    "{words} words. Keep what still matters from the summary so far."
)


class SummaryAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    summary: str = Field(min_length=1, pattern=r"\S")


@dataclass(frozen=True, slots=True)
class MidTermState:
    """The conversation's mid-term memory: its summary, the newest message seq the summary
    covers, and the newest user message the LLM fact extractor has read."""

    summary: str = ""
    summarized_seq: int = 0
    extracted_seq: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "summarized_seq": self.summarized_seq,
            "extracted_seq": self.extracted_seq,
        }

    @classmethod
    def of(cls, value: Mapping[str, Any]) -> MidTermState:
        return cls(
            summary=str(value.get("summary", "")),
            summarized_seq=int(value.get("summarized_seq", 0)),
            extracted_seq=int(value.get("extracted_seq", 0)),
        )


@dataclass(frozen=True, slots=True)
class SummaryUpdate:
    text: str | None  # None: the model's answers were malformed, the batch is skipped
    through_seq: int  # the newest message the batch held


class Summariser:
    """Folds messages into the summary with the model, within ``summary_tokens``."""

    def __init__(
        self,
        model: ChatModel,
        *,
        summary_tokens: int,
        input_tokens: int = 1500,
        count_tokens: CountTokens | None = None,
    ) -> None:
        self._model = model
        self._summary_tokens = summary_tokens
        self._input_tokens = input_tokens  # the messages of one batch, at most
        self._count = count_tokens or model.count_tokens
        self._ask = StructuredAsk(
            SummaryAnswer, max_tokens=2 * summary_tokens + 32, check=self._within_budget
        )

    @property
    def text_budget(self) -> int:
        """Tokens the summary's own text may take (the heading is the note's)."""
        return self._summary_tokens - self._count(SUMMARY_HEADING)

    def _within_budget(self, answer: SummaryAnswer) -> str | None:
        tokens = self._count(answer.summary)
        if tokens > self.text_budget:
            return f"the summary has {tokens} tokens; at most {self.text_budget} fit"
        return None

    async def update(self, previous: str, messages: Sequence[Message]) -> SummaryUpdate | None:
        """The summary with the leading ``messages`` that fit one batch folded in; None when
        ``messages`` is empty. A batch with nothing to tell (only fragments) keeps
        ``previous`` without asking the model."""
        lines, through = self._batch(messages)
        if not through:
            return None
        if not lines:
            return SummaryUpdate(previous, through)
        transcript = "\n".join(lines)
        answer = await self._ask.ask(
            self._model,
            [
                ChatMessage(Role.SYSTEM, INSTRUCTION.format(words=self._words())),
                ChatMessage(
                    Role.USER,
                    f"Summary so far:\n{previous or '(none yet)'}\n\nNew messages:\n{transcript}",
                ),
            ],
            what="summary",
        )
        return SummaryUpdate(answer.summary.strip() if answer else None, through)

    def _words(self) -> int:
        return max(10, int(self.text_budget * 0.6))  # words run a little over tokens

    def _batch(self, messages: Sequence[Message]) -> tuple[list[str], int]:
        """Transcript lines of the leading messages within ``input_tokens``, and the seq of
        the last message they reach. A first message longer than the whole batch is cut,
        visibly (a summary is lossy by nature)."""
        lines: list[str] = []
        used = 0
        through = 0
        for message in messages:
            if _summarisable(message):
                line = f"{'User' if message.role is Role.USER else 'Character'}: {message.content}"
                cost = self._count(line)
                if used + cost > self._input_tokens:
                    if lines:
                        break
                    line = _cut(line, self._input_tokens, self._count)
                    cost = self._input_tokens
                lines.append(line)
                used += cost
            through = message.seq
        return lines, through


def _summarisable(message: Message) -> bool:
    return (
        message.role in (Role.USER, Role.ASSISTANT)
        and message.status is MessageStatus.COMPLETE
        and bool(message.content.strip())
    )


def _cut(text: str, budget: int, count: CountTokens) -> str:
    words = text.split()
    low, high = 1, len(words)
    while low < high:  # the most words that fit with the mark
        mid = (low + high + 1) // 2
        if count(" ".join(words[:mid]) + CUT_MARK) <= budget:
            low = mid
        else:
            high = mid - 1
    return " ".join(words[:low]) + CUT_MARK


def with_summary(
    prompt: AssembledPrompt, summary: str, budget: int, count_tokens: CountTokens
) -> AssembledPrompt:
    """``prompt`` with the summary note after the system block and the examples, before the
    history; its leading sentences within ``budget`` tokens (the heading included)."""
    text = _within(summary, budget - count_tokens(SUMMARY_HEADING), count_tokens)
    if not text:
        return prompt
    note = f"{SUMMARY_HEADING}\n{text}"
    messages = list(prompt.messages)
    at = min(len(messages), 1 + prompt.examples_included)  # the system block comes first
    messages.insert(at, ChatMessage(Role.SYSTEM, note))
    return replace(prompt, messages=tuple(messages), tokens=prompt.tokens + count_tokens(note))


def _within(text: str, budget: int, count_tokens: CountTokens) -> str:
    if count_tokens(text) <= budget:
        return text
    # A summary written under a larger budget: its leading sentences.
    kept = ""
    for sentence in text.replace("\n", " ").split(". "):
        candidate = f"{kept}{sentence.rstrip('.')}. " if sentence else kept
        if count_tokens(candidate) > budget:
            break
        kept = candidate
    return kept.strip()
