"""The moderation stage of a turn: blocked words on the way in and out, PII kept from
backends reached over the network.

    policy = ContentPolicy(words=WordFilter(...), redactor=Redactor())
    policy.screen(text)              # raises ContentBlocked; returns the masked text + hits
    guard = policy.for_turn(model)   # per turn: PII tokens only if ``model.remote``
    guard.outbound(messages)         # the prompt as the backend sees it
    guard.feed(chunk) / guard.flush()  # the reply as the user sees it (tokens restored, masked)
    guard.stored(text)               # what the store keeps (originals unless configured not to)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from personae.core.moderation import Hit, StreamMasker, Verdict, WordFilter
from personae.core.pii import PiiVault, Redactor, TokenRestorer
from personae.core.ports import ChatModel
from personae.core.types import ChatMessage
from personae.errors import ContentBlocked


class ContentPolicy:
    """``exempt_local``: an in-process model (``remote`` False) sees PII unredacted.
    ``store_originals``: stored messages keep the original values (else their tokens)."""

    def __init__(
        self,
        words: WordFilter | None = None,
        redactor: Redactor | None = None,
        *,
        exempt_local: bool = True,
        store_originals: bool = True,
    ) -> None:
        self.words = words or WordFilter({})
        self.redactor = redactor
        self.exempt_local = exempt_local
        self.store_originals = store_originals

    def screen(self, text: str) -> Verdict:
        """The user's text, masked; raises ``ContentBlocked`` if it has a ``block`` word."""
        verdict = self.words.check(text)
        if verdict.blocked:
            raise ContentBlocked(
                "the message contains words this server does not accept",
                matches=len(verdict.blocked),
            )
        return verdict

    def redacts_for(self, model: ChatModel) -> bool:
        return self.redactor is not None and (model.remote or not self.exempt_local)

    def for_turn(self, model: ChatModel) -> TurnGuard:
        vault = self.redactor.vault() if self.redacts_for(model) and self.redactor else None
        return TurnGuard(vault, self.words.masker(), store_originals=self.store_originals)


class TurnGuard:
    def __init__(
        self, vault: PiiVault | None, masker: StreamMasker, *, store_originals: bool = True
    ) -> None:
        self.vault = vault
        self._masker = masker
        self._restorer: TokenRestorer | None = vault.restorer() if vault else None
        self._store_originals = store_originals

    @property
    def output_hits(self) -> Sequence[Hit]:
        """Blocked-word matches in the reply so far (masked or flagged)."""
        return self._masker.hits

    def outbound(self, messages: Sequence[ChatMessage]) -> tuple[ChatMessage, ...]:
        if self.vault is None:
            return tuple(messages)
        return tuple(self._redacted(m, self.vault) for m in messages)

    @staticmethod
    def _redacted(message: ChatMessage, vault: PiiVault) -> ChatMessage:
        # Most of a prompt has no PII: keep those messages rather than copy each one.
        content = vault.redact(message.content)
        return message if content == message.content else replace(message, content=content)

    def feed(self, chunk: str) -> str:
        text = self._restorer.feed(chunk) if self._restorer else chunk
        return self._masker.feed(text)

    def flush(self) -> str:
        text = self._restorer.flush() if self._restorer else ""
        return self._masker.feed(text) + self._masker.flush()

    def stored(self, text: str) -> str:
        if self._store_originals or self.vault is None:
            return text
        return self.vault.redact(text)
