"""How a turn went, told to the observer (``core/observe.py``) and, if asked, to the log.

A one-to-one turn and each reply of a group turn are reported alike, once each has ended,
however it ended. An observer's bug must not end a turn: its exception is logged here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import structlog

from personae.core.characters import Character
from personae.core.moderation import Hit
from personae.core.observe import TurnObserver, TurnTally
from personae.core.ports import ChatModel
from personae.core.types import InboundMessage

log = structlog.get_logger(__name__)


class TurnReporter:
    """``log_content``: log the message and reply texts (at debug level)."""

    def __init__(self, observer: TurnObserver, *, log_content: bool = False) -> None:
        self._observer = observer
        self._log_content = log_content

    def moderation(self, stage: str, hits: Sequence[Hit]) -> None:
        """Blocked words matched on the way ``stage`` (input, output), counted by action."""
        for action, count in Counter(h.action.value for h in hits).items():
            self._observer.moderation_hit(stage, action, count)

    def finished(
        self, inbound: InboundMessage, character: Character, model: ChatModel, tally: TurnTally
    ) -> None:
        """The turn ``tally`` watched has ended (a retried message ran none: not reported)."""
        if tally.duplicate:
            return
        tag = inbound.experiment
        try:
            tally.report(
                self._observer,
                character=character.id,
                backend=model.name,
                experiment=tag.experiment_id if tag else None,
                variant=tag.variant if tag else None,
                user=inbound.user,
                user_chars=len(inbound.text),
            )
        except Exception:  # a metrics bug must not end the turn
            log.exception("turn observer failed")
        if self._log_content:
            log.debug("turn content", text=inbound.text, reply=tally.reply_text)
