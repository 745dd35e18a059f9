"""Experiments in turns: ``ChatService.turn`` assigns the variant in one place, a gray release
keeps control on the old version, the kill switch and ramps hold from the next turn, forcing
needs a role, and every turn's report carries its experiment and variant. Real SQLite store,
fake model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest

from personae.coordination.local import LocalConversationLock
from personae.core.catalog import CharacterCatalog, CharacterVersion
from personae.core.characters import Character
from personae.core.events import MessageDone, TurnEvent
from personae.core.experiments.live import LiveExperiments
from personae.core.experiments.spec import CONTROL, experiment_data, parse_experiment
from personae.core.observe import TurnObserver, TurnReport
from personae.core.overrides import ExperimentTag, Overrides
from personae.core.routing import ModelRoutes
from personae.core.service import ChatService, TurnSettings
from personae.core.types import InboundMessage, Role
from personae.errors import InvalidInput
from personae.storage.sqlite import SqliteConversationStore
from personae.testing import FakeChatModel


def version(persona: str) -> CharacterVersion:
    character = Character(id="aria", name="Aria", persona=persona, greetings=("Hello.",))
    return CharacterVersion.of(character, persona.encode())


OLD, NEW = version("PERSONA-OLD"), version("PERSONA-NEW")


def release(percent: float, *, killed: bool = False, **extra: object) -> dict[str, object]:
    return {
        "id": "aria-v2",
        "targeting": {"characters": ["aria"]},
        "killed": killed,
        "control": {"character_version": OLD.hash},
        "variants": [{"name": "v2", "percent": percent, "character_version": NEW.hash}],
        **extra,
    }


class Reports(TurnObserver):
    def __init__(self) -> None:
        self.reports: list[TurnReport] = []

    def turn_finished(self, report: TurnReport) -> None:
        self.reports.append(report)


def tag_of(reports: Reports) -> ExperimentTag | None:
    """The experiment and variant the last turn's report names."""
    last = reports.reports[-1]
    if last.experiment is None or last.variant is None:
        return None
    return ExperimentTag(last.experiment, last.variant)


Rig = tuple[ChatService, LiveExperiments, FakeChatModel, Reports]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    catalog = CharacterCatalog([OLD])
    catalog.put(NEW)  # the new file is current: without the experiment everyone would get it
    model = FakeChatModel(name="main")
    live = LiveExperiments()
    reports = Reports()
    store = SqliteConversationStore(tmp_path / "db.sqlite3")
    service = ChatService(
        catalog=catalog,
        store=store,
        routes=ModelRoutes({"main": model}, default="main"),
        lock=LocalConversationLock(),
        settings=TurnSettings(),
        observer=reports,
        experiments=live,
    )
    async with store:
        yield service, live, model, reports


async def say(service: ChatService, user: str, **fields: object) -> MessageDone:
    inbound = InboundMessage(user=user, character_id="aria", text="hi", **fields)  # type: ignore[arg-type]
    async with aclosing(service.turn(inbound)) as events:
        collected: list[TurnEvent] = [e async for e in events]
    done = collected[-1]
    assert isinstance(done, MessageDone)
    return done


def persona_seen(model: FakeChatModel) -> str:
    system = "\n".join(m.content for m in model.requests[-1].messages if m.role is Role.SYSTEM)
    return "NEW" if "PERSONA-NEW" in system else "OLD"


USERS = [f"u{i}" for i in range(40)]


async def test_a_gray_release_keeps_control_on_the_old_version(rig: Rig) -> None:
    service, live, model, reports = rig
    live.put(parse_experiment(release(50)))
    seen: dict[str, str] = {}
    for user in USERS:
        done = await say(service, user)
        seen[user] = persona_seen(model)
        tag = tag_of(reports)
        assert tag is not None
        assert tag.experiment_id == "aria-v2"
        # The reply records the version that wrote it; it matches the variant.
        expected = NEW.hash if tag.variant == "v2" else OLD.hash
        assert done.message.character_version == expected
        assert seen[user] == ("NEW" if tag.variant == "v2" else "OLD")
    assert set(seen.values()) == {"OLD", "NEW"}  # 40 users at 50 %: both variants served
    report = reports.reports[-1]
    assert report.user == USERS[-1]
    assert report.reply_id is not None
    assert report.conversation is not None
    assert (report.user_chars, report.conversation_messages) == (2, 2)  # greeting + "hi"


async def test_the_kill_switch_and_a_ramp_hold_from_the_next_turn(rig: Rig) -> None:
    service, live, model, reports = rig
    live.put(parse_experiment(release(50)))
    variants = {}
    for user in USERS:
        await say(service, user)
        tag = tag_of(reports)
        assert tag is not None
        variants[user] = tag.variant
    in_v2 = [u for u, v in variants.items() if v == "v2"]
    assert in_v2

    live.put(parse_experiment(release(50, killed=True)))
    for user in in_v2:
        await say(service, user)
        assert persona_seen(model) == "OLD"
        assert tag_of(reports) == ExperimentTag("aria-v2", CONTROL)

    live.put(parse_experiment(release(100 / 2)))  # back on: the same users as before
    for user in in_v2:
        await say(service, user)
        assert persona_seen(model) == "NEW"

    live.put(parse_experiment(release(0)))  # ramped to 0: everyone is control
    for user in in_v2:
        await say(service, user)
        assert persona_seen(model) == "OLD"


async def test_forcing_a_variant_needs_a_force_role(rig: Rig) -> None:
    service, live, model, reports = rig
    live.put(parse_experiment(release(0)))
    await say(service, "tester", forced_variant="v2", role="user")  # not allowed: ignored
    assert tag_of(reports) == ExperimentTag("aria-v2", CONTROL)
    await say(service, "tester", forced_variant="v2", role="admin")
    assert tag_of(reports) == ExperimentTag("aria-v2", "v2")
    assert persona_seen(model) == "NEW"
    await say(service, "tester", forced_variant="nope", role="admin")  # unknown: ignored
    assert tag_of(reports) == ExperimentTag("aria-v2", CONTROL)


async def test_targeting_by_role_channel_and_tag(rig: Rig) -> None:
    service, live, _, reports = rig
    live.put(
        parse_experiment(
            release(50, targeting={"roles": ["user"], "channels": ["ws"], "tags": ["beta"]})
        )
    )
    await say(service, "u1", channel="http", tags=("beta",))
    assert tag_of(reports) is None
    await say(service, "u1", channel="ws", tags=("alpha",))
    assert tag_of(reports) is None
    await say(service, "u1", channel="ws", tags=("beta",), role="service")
    assert tag_of(reports) is None
    await say(service, "u1", channel="ws", tags=("beta",))
    assert tag_of(reports) is not None


async def test_a_replay_s_own_overrides_are_left_alone(rig: Rig) -> None:
    service, live, model, reports = rig
    live.put(parse_experiment(release(50)))
    await say(service, "u1", overrides=Overrides(character_version=OLD.hash))
    assert tag_of(reports) is None
    assert persona_seen(model) == "OLD"


async def test_a_variant_version_no_longer_kept_falls_back_to_the_current(rig: Rig) -> None:
    service, live, _model, reports = rig
    gone = {**release(100), "control": {"character_version": "a" * 64}}
    live.put(parse_experiment({**gone, "variants": [{"name": "v2", "percent": 0}]}))
    done = await say(service, "u1")
    assert tag_of(reports) == ExperimentTag("aria-v2", CONTROL)
    assert done.message.character_version == NEW.hash  # the current one, not a failed turn


def test_the_first_experiment_by_id_takes_the_turn() -> None:
    b = parse_experiment({"id": "b", "variants": [{"name": "x", "percent": 100}]})
    a = parse_experiment({"id": "a", "variants": [{"name": "y", "percent": 100}]})
    live = LiveExperiments([b, a])
    chosen = live.assign(InboundMessage(user="u", character_id="aria", text="hi"))
    assert chosen.experiment == ExperimentTag("a", "y")
    assert live.remove("a")
    assert not live.remove("a")
    chosen = live.assign(InboundMessage(user="u", character_id="aria", text="hi"))
    assert chosen.experiment == ExperimentTag("b", "x")
    assert live.assign(InboundMessage(user="u", character_id="", text="hi")).experiment is None


def test_an_experiment_round_trips_through_its_data() -> None:
    experiment = parse_experiment(
        release(12.5, force_roles=["admin", "service"], description="Shorter replies?")
        | {
            "variants": [
                {
                    "name": "v2",
                    "percent": 12.5,
                    "character_version": NEW.hash,
                    "route": ["fast"],
                    "instructions": "Be brief.",
                    "generation": {"temperature": 0.3},
                    "memory": {"enabled": False},
                }
            ]
        }
    )
    assert parse_experiment(experiment_data(experiment)) == experiment


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"killed": "yes"}, "killed must be true or false"),
        ({"color": "red"}, "unknown field(s) color"),
        ({"control": {"percent": 3}}, "control: unknown field(s) percent"),
        ({"variants": [{"name": "v2", "percent": 5, "versoin": "x"}]}, "unknown field(s) versoin"),
    ],
)
def test_mistakes_are_refused_with_the_field_named(change: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_experiment(release(5) | change)
