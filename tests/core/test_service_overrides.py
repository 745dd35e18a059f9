"""A turn's overrides (an experiment's variant, a replay): the character version, the route,
generation parameters, extra instructions and memory they name are what the turn uses, and
nothing else changes. Real SQLite store, scripted fake models."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog, CharacterVersion
from personae.core.characters import Character, GenerationOverrides
from personae.core.events import MessageDone, TurnEvent
from personae.core.memory.stage import CountTokens, NoMemory
from personae.core.overrides import Overrides
from personae.core.prompt import AssembledPrompt
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import (
    ChatMessage,
    InboundMessage,
    OpenedTurn,
    Role,
    SamplingOverrides,
)
from personae.errors import ConfigurationError, NotFound
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel


def version(persona: str) -> CharacterVersion:
    character = Character(
        id="aria",
        name="Aria",
        persona=persona,
        greetings=("Hello.",),
        generation=GenerationOverrides(temperature=0.5, max_tokens=100),
    )
    return CharacterVersion.of(character, persona.encode())


class RecallNote(NoMemory):
    """A memory stage that always adds the same note, so a test sees whether it ran."""

    async def enrich(
        self, prompt: AssembledPrompt, opened: OpenedTurn, count_tokens: CountTokens
    ) -> AssembledPrompt:
        return replace(
            prompt, messages=(ChatMessage(Role.SYSTEM, "RECALLED-NOTE"), *prompt.messages)
        )


Rig = tuple[ChatService, CharacterCatalog, FakeChatModel, FakeChatModel]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    catalog = CharacterCatalog([version("PERSONA-ONE")])
    catalog.put(version("PERSONA-TWO"))  # now current; PERSONA-ONE is kept
    main, other = FakeChatModel(name="main"), FakeChatModel(name="other")
    store = SqliteConversationStore(tmp_path / "db.sqlite3")
    service = ChatService(
        catalog=catalog,
        store=store,
        routes=ModelRoutes({"main": main, "other": other}, default="main"),
        lock=LocalConversationLock(),
        settings=TurnSettings(),
        memory=RecallNote(),
    )
    async with store:
        yield service, catalog, main, other


async def say(service: ChatService, overrides: Overrides | None, **sampling: float) -> MessageDone:
    inbound = InboundMessage(
        user="sam",
        character_id="aria",
        text="hi",
        overrides=overrides,
        sampling=SamplingOverrides(**sampling),  # type: ignore[arg-type]
    )
    async with aclosing(service.turn(inbound)) as events:
        collected: list[TurnEvent] = [e async for e in events]
    done = collected[-1]
    assert isinstance(done, MessageDone)
    return done


def system_text(model: FakeChatModel) -> str:
    return "\n".join(m.content for m in model.requests[-1].messages if m.role is Role.SYSTEM)


async def test_without_overrides_the_turn_is_as_configured(rig: Rig) -> None:
    service, _, main, other = rig
    await say(service, None)
    assert "PERSONA-TWO" in system_text(main)
    assert "RECALLED-NOTE" in system_text(main)
    assert not other.requests
    assert main.requests[-1].params.temperature == 0.5


async def test_a_kept_version_by_its_hash_prefix(rig: Rig) -> None:
    service, catalog, main, _ = rig
    old = catalog.versions("aria")[-1]
    done = await say(service, Overrides(character_version=old.hash[:8]))
    assert "PERSONA-ONE" in system_text(main)
    assert done.message.character_version == old.hash


async def test_an_unknown_version_is_a_clear_error(rig: Rig) -> None:
    service, _, main, _ = rig
    with pytest.raises(NotFound, match="no kept version"):
        await say(service, Overrides(character_version="ffffffffffff"))
    assert not main.requests


async def test_a_route_generation_and_instructions(rig: Rig) -> None:
    service, _, main, other = rig
    overrides = Overrides(
        route=("other",),
        generation=SamplingOverrides(temperature=0.1),
        instructions="SPEAK-LIKE-A-PIRATE",
    )
    done = await say(service, overrides)
    assert not main.requests
    assert other.requests
    assert done.message.model == "other"
    assert other.requests[-1].params.temperature == 0.1
    assert other.requests[-1].params.max_tokens == 100  # the character's, not overridden
    assert "SPEAK-LIKE-A-PIRATE" in system_text(other)


async def test_the_caller_s_sampling_still_wins(rig: Rig) -> None:
    service, _, main, _ = rig
    await say(service, Overrides(generation=SamplingOverrides(temperature=0.1)), temperature=0.9)
    assert main.requests[-1].params.temperature == 0.9


async def test_memory_off_for_the_turn(rig: Rig) -> None:
    service, _, main, _ = rig
    await say(service, Overrides(memory_enabled=False))
    assert "RECALLED-NOTE" not in system_text(main)


async def test_a_route_naming_an_unknown_backend_is_refused(rig: Rig) -> None:
    service, _, main, _ = rig
    with pytest.raises(ConfigurationError, match="unknown backend"):
        await say(service, Overrides(route=("nope",)))
    assert not main.requests
