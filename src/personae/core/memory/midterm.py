"""Mid-term memory at its set moments: the rolling summary and the LLM fact extractor, run by
a background job off the turn's path.

    each turn (MidTermMemory.enrich, after the prompt is assembled):
        the stored summary -> a note after the persona, before the history
        >= summary_min_messages messages out of the window and not summarised -> job: summarise
        every extract_every_turns user turns -> job: extract facts
    session expiry (SessionRegistry.on_expire -> MidTermJob.session_expired):
        job: catch up (facts from every unread user message, the summary up to the window)
    the job (MidTermJob.run_forever, supervised): one conversation at a time, its work merged
        -> facts as memory items (the profile reads them) -> summary and positions in the
        conversation's state (compare-and-set; a conflict is redone at the next moment)

A malformed answer is asked again once, then that batch is skipped with a warning (its
messages stay in long-term memory); a failing backend leaves the positions where they were.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, replace

import structlog

from personae.core.memory.items import NewMemory, Partition
from personae.core.memory.llm_extract import LlmFactExtractor
from personae.core.memory.profile import FactSource
from personae.core.memory.recall import normalized
from personae.core.memory.stage import NOTE_OVERHEAD_TOKENS, CountTokens, PromptMemory
from personae.core.memory.summary import STATE_KEY, MidTermState, Summariser, with_summary
from personae.core.ports import ConversationStore, MemoryStore
from personae.core.prompt import AssembledPrompt
from personae.core.sessions import ConversationSession
from personae.core.types import Conversation, OpenedTurn, Role
from personae.errors import StateConflict

log = structlog.get_logger(__name__)

#: Conversations whose window position the job remembers for their session's expiry.
MAX_REMEMBERED = 10_000
KNOWN_FACTS = 500  # newest facts of a partition compared with newly extracted ones


@dataclass(frozen=True, slots=True)
class MidTermSettings:
    summary_tokens: int = 200  # the summary note, heading included (0: no summary)
    summary_min_messages: int = 6  # messages out of the window before a summary is written
    extract_every_turns: int = 5  # user turns between LLM fact extractions (0: none)
    extract_messages: int = 20  # user messages read by one extraction
    batch_messages: int = 60  # messages read for one summary batch
    max_rounds: int = 5  # model calls of one kind for one conversation at one moment


@dataclass(frozen=True, slots=True)
class _Due:
    out_of_window_seq: int = 0  # the newest message out of the window (0: unknown)
    extract: bool = False
    catch_up: bool = False  # session expiry: all that is pending

    def merge(self, other: _Due) -> _Due:
        return _Due(
            max(self.out_of_window_seq, other.out_of_window_seq),
            self.extract or other.extract,
            self.catch_up or other.catch_up,
        )


class MidTermJob:
    def __init__(
        self,
        conversations: ConversationStore,
        memory: MemoryStore,
        *,
        summariser: Summariser | None,
        extractor: LlmFactExtractor | None,
        settings: MidTermSettings | None = None,
        facts: FactSource | None = None,
    ) -> None:
        self._conversations = conversations
        self._memory = memory
        self._facts = facts  # to store no fact the partition already states
        self._summariser = summariser
        self._extractor = extractor
        self.settings = settings or MidTermSettings()
        self._due: dict[str, _Due] = {}
        self._window: OrderedDict[str, int] = OrderedDict()
        self._wake = asyncio.Event()
        self.done = 0  # conversations worked on since start

    @property
    def pending(self) -> int:
        return len(self._due)

    def schedule(
        self,
        conversation_id: str,
        *,
        out_of_window_seq: int = 0,
        extract: bool = False,
        catch_up: bool = False,
    ) -> None:
        """Ask for work on a conversation; merged with work already waiting. Never blocks."""
        self.saw_window(conversation_id, out_of_window_seq)
        due = _Due(out_of_window_seq, extract, catch_up)
        waiting = self._due.get(conversation_id)
        self._due[conversation_id] = waiting.merge(due) if waiting else due
        self._wake.set()

    def saw_window(self, conversation_id: str, out_of_window_seq: int) -> None:
        """Remember where the window of a conversation began, for its session's expiry."""
        if out_of_window_seq:
            self._window[conversation_id] = max(
                out_of_window_seq, self._window.get(conversation_id, 0)
            )
            self._window.move_to_end(conversation_id)
            while len(self._window) > MAX_REMEMBERED:
                self._window.popitem(last=False)

    async def session_expired(self, session: ConversationSession) -> None:
        """The session hook: catch the conversation up while nobody is talking in it."""
        seq = self._window.pop(session.conversation_id, 0)
        self.schedule(session.conversation_id, out_of_window_seq=seq, catch_up=True)

    async def run_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.run_once()

    async def run_once(self) -> int:
        """Work on every conversation waiting now; how many there were."""
        count = 0
        while self._due:
            conversation_id = next(iter(self._due))
            due = self._due.pop(conversation_id)
            count += 1
            try:
                await self._work(conversation_id, due)
            except Exception as exc:  # a backend or the store: the positions stay put
                log.warning(
                    "memory: mid-term work failed; retried at the next moment",
                    conversation=conversation_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
            self.done += 1
        return count

    async def _work(self, conversation_id: str, due: _Due) -> None:
        conversation = await self._conversations.get_conversation(conversation_id)
        if conversation is None:
            return  # deleted meanwhile
        if await self._conversations.get_group(conversation_id) is not None:
            return  # several users write there: no one user's facts, not summarised yet
        stored = await self._conversations.get_state(conversation_id, STATE_KEY)
        before = MidTermState.of(stored.value) if stored else MidTermState()
        state = before
        if self._extractor is not None and (due.extract or due.catch_up):
            state = await self._extract(conversation, state, all_of_it=due.catch_up)
        if self._summariser is not None and due.out_of_window_seq > state.summarized_seq:
            state = await self._summarise(conversation, state, due.out_of_window_seq)
        if state == before:
            return
        try:
            await self._conversations.put_state(
                conversation_id, STATE_KEY, state.as_json(), stored.version if stored else None
            )
        except StateConflict:  # another writer (another process): its work stands
            log.info("memory: mid-term state moved meanwhile", conversation=conversation_id)

    async def _extract(
        self, conversation: Conversation, state: MidTermState, *, all_of_it: bool
    ) -> MidTermState:
        assert self._extractor is not None
        partition = Partition.private(conversation.user_id, conversation.character_id)
        for _ in range(self.settings.max_rounds):
            messages = await self._conversations.list_messages(
                conversation.id,
                after_seq=state.extracted_seq,
                limit=2 * self.settings.extract_messages,  # replies between them
            )
            if not messages:
                break
            said = [m for m in messages if m.role is Role.USER][: self.settings.extract_messages]
            batch = [m for m in messages if not said or m.seq <= said[-1].seq]
            items = await self._extractor.extract(partition, batch)
            if items is None:
                log.warning(
                    "memory: facts of these messages skipped",
                    conversation=conversation.id,
                    seqs=f"{batch[0].seq}..{batch[-1].seq}",
                )
            elif items := await self._new(partition, items):
                await self._memory.add(items)
            state = replace(state, extracted_seq=batch[-1].seq)
            if not all_of_it:
                break
        return state

    async def _new(self, partition: Partition, items: list[NewMemory]) -> list[NewMemory]:
        """``items`` but the facts the partition holds already (the rule-based extractor
        found most names and likes in the same messages)."""
        if self._facts is None:
            return items
        known = {
            (fact.kind, normalized(fact.text))
            for fact in await self._facts.list_facts(partition, limit=KNOWN_FACTS)
        }
        return [i for i in items if (i.kind, normalized(i.text)) not in known]

    async def _summarise(
        self, conversation: Conversation, state: MidTermState, through_seq: int
    ) -> MidTermState:
        assert self._summariser is not None
        for _ in range(self.settings.max_rounds):
            if state.summarized_seq >= through_seq:
                break
            messages = await self._conversations.list_messages(
                conversation.id, after_seq=state.summarized_seq, limit=self.settings.batch_messages
            )
            update = await self._summariser.update(
                state.summary, [m for m in messages if m.seq <= through_seq]
            )
            if update is None:
                break
            if update.text is None:
                log.warning(
                    "memory: these messages are left out of the summary",
                    conversation=conversation.id,
                    seqs=f"{state.summarized_seq + 1}..{update.through_seq}",
                )
            summary = state.summary if update.text is None else update.text
            state = replace(state, summary=summary, summarized_seq=update.through_seq)
        return state


class MidTermMemory:
    """A ``PromptMemory`` around another (the profile and recall stage): adds the summary
    note and tells the job what is due."""

    def __init__(
        self,
        inner: PromptMemory,
        conversations: ConversationStore,
        job: MidTermJob,
    ) -> None:
        self._inner = inner
        self._conversations = conversations
        self._job = job

    @property
    def reserved_tokens(self) -> int:
        summary = self._job.settings.summary_tokens
        return self._inner.reserved_tokens + (summary + NOTE_OVERHEAD_TOKENS if summary else 0)

    async def enrich(
        self, prompt: AssembledPrompt, opened: OpenedTurn, count_tokens: CountTokens
    ) -> AssembledPrompt:
        prompt = await self._inner.enrich(prompt, opened, count_tokens)
        settings = self._job.settings
        conversation_id = opened.conversation.id
        try:
            stored = await self._conversations.get_state(conversation_id, STATE_KEY)
        except Exception:  # memory is an aid: the turn goes on without the summary
            log.exception("memory: reading the summary failed")
            return prompt
        state = MidTermState.of(stored.value) if stored else MidTermState()
        if state.summary and settings.summary_tokens:
            prompt = with_summary(prompt, state.summary, settings.summary_tokens, count_tokens)
        out = prompt.out_of_window_seq
        summary_due = bool(settings.summary_tokens) and (
            out - state.summarized_seq >= settings.summary_min_messages
        )
        every = settings.extract_every_turns
        extract_due = bool(every) and opened.user_turn > 0 and opened.user_turn % every == 0
        # Every N turns the summary catches up too, however little fell out since.
        summary_due = summary_due or (
            extract_due and bool(settings.summary_tokens) and out > state.summarized_seq
        )
        self._job.saw_window(conversation_id, out)
        if summary_due or extract_due:
            self._job.schedule(
                conversation_id,
                out_of_window_seq=out if summary_due else 0,
                extract=extract_due,
            )
        return prompt
