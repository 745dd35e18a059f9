"""A deployment for record, trace and replay tests: one character with a lorebook, two
scripted fake backends ``a`` and ``b`` (the default chain is ``a`` then ``b``), every
conversation recorded."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path
from typing import Any

from personae.app.runtime import Runtime
from personae.core.events import MessageDone, TurnEvent
from personae.core.types import InboundMessage
from personae.settings import Settings

ADMIN_KEY = "replay-admin-secret"

VERA = """\
id: vera
name: Vera
persona: "{{char}} is a harbour pilot in the port of Veth."
greetings:
  - "Welcome aboard."
character_book:
  entries:
    - name: harbour
      keys: [harbour]
      content: The harbour of Veth is frozen in winter.
      enabled: true
      insertion_order: 100
      extensions: {}
  extensions: {}
"""


def replay_settings(tmp_path: Path, **overrides: Any) -> Settings:
    characters = tmp_path / "characters"
    characters.mkdir(exist_ok=True)
    (characters / "vera.yaml").write_text(VERA, encoding="utf-8")
    overrides.setdefault("routes", {"default": ["a", "b"], "retry": {"retries": 0}})
    overrides.setdefault("replay", {"record_rate": 1.0})
    return Settings(
        data_dir=tmp_path / "data",
        characters_dir=characters,
        watch_characters=False,
        **overrides,
    )


async def say(runtime: Runtime, text: str, conversation_id: str | None = None) -> MessageDone:
    inbound = InboundMessage(
        user="sam",
        character_id="vera",
        text=text,
        conversation_id=conversation_id,
        new_conversation=conversation_id is None,
    )
    async with aclosing(runtime.service.turn(inbound)) as events:
        collected: list[TurnEvent] = [event async for event in events]
    done = collected[-1]
    assert isinstance(done, MessageDone), collected
    return done
