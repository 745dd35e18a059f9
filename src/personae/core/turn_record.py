"""A turn's record: everything needed to explain its prompt and to reproduce it.

One record per reply, named by the reply's message id (the *turn id*): the character and the
version that answered, the prompt exactly as it was sent to the backend (after PII
tokenising, so it never holds more than the stored messages do), the lore and memory that
went into it, the skill that fired, the experiment and overrides, the generation parameters,
the route through the backends (retries, failovers) and how long each stage took.

``TurnRecords`` is the port that keeps them; ``record_data`` / ``record_of`` turn a record
into JSON data and back (the store keeps it so, the admin API answers with it).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from personae.core.overrides import ExperimentTag, Overrides
from personae.core.ports import Resource
from personae.core.route_log import Attempt, RouteTaken
from personae.core.types import ChatMessage, GenerationParams, Role, SamplingOverrides, Usage
from personae.errors import InvalidInput

#: The version of ``record_data``'s layout; a record of another version is refused.
RECORD_FORMAT = 1


@dataclass(frozen=True, slots=True)
class SkillTaken:
    """The skill that fired in a turn: it answered (a slash command) or added a note."""

    name: str
    ok: bool
    answered: bool
    note: str | None = None


@dataclass(frozen=True, slots=True)
class StageTime:
    name: str  # open, skills, behaviour, prompt, generate
    ms: float


@dataclass(frozen=True, slots=True)
class TurnRecord:
    turn_id: str  # the reply's message id
    conversation_id: str
    user_message_id: str
    user: str  # the user's external id
    character_id: str
    character_version: str | None
    created_at: datetime
    model: str  # the model name the reply is stored with
    prompt: tuple[ChatMessage, ...]  # as sent to the backend; empty when a skill answered
    prompt_tokens: int  # the assembled prompt's count (the backend's usage may differ)
    lore: tuple[str, ...] = ()  # lorebook entries included, in insertion order
    lore_dropped: int = 0
    memory_note: str | None = None  # what long-term memory added to the prompt
    knowledge: tuple[str, ...] = ()  # document chunks the memory note cites (guide.pdf#3)
    skill: SkillTaken | None = None
    experiment: ExperimentTag | None = None
    overrides: Overrides | None = None
    params: GenerationParams = field(default_factory=GenerationParams)
    routes: tuple[RouteTaken, ...] = ()  # one per request to the backend (tool rounds: more)
    stages: tuple[StageTime, ...] = ()
    total_ms: float = 0.0  # from the turn's start to its reply stored
    usage: Usage | None = None
    latency_ms: float | None = None  # the generate stage as the reply records it
    first_token_ms: float | None = None


class TurnRecords(Resource, abc.ABC):
    """Where turn records are kept (``storage/sqlite/turn_records.py``)."""

    @abc.abstractmethod
    async def add(self, records: Sequence[TurnRecord]) -> int:
        """Keep these (a record of the same turn is replaced); a store that holds the
        replies too skips a record whose reply no longer exists. Returns how many were kept."""

    @abc.abstractmethod
    async def get(self, turn_id: str) -> TurnRecord | None: ...

    @abc.abstractmethod
    async def for_conversation(self, conversation_id: str) -> list[TurnRecord]:
        """The conversation's records, oldest first."""

    @abc.abstractmethod
    async def purge_before(self, moment: datetime) -> int:
        """Drop records made before ``moment`` (retention); returns how many went."""


def record_data(record: TurnRecord) -> dict[str, Any]:
    """``record`` as JSON data (the admin API's answer, the store's column)."""
    return {
        "format": RECORD_FORMAT,
        "turn_id": record.turn_id,
        "conversation_id": record.conversation_id,
        "user_message_id": record.user_message_id,
        "user": record.user,
        "character_id": record.character_id,
        "character_version": record.character_version,
        "created_at": record.created_at.isoformat(),
        "model": record.model,
        "prompt": [_message_data(m) for m in record.prompt],
        "prompt_tokens": record.prompt_tokens,
        "lore": list(record.lore),
        "lore_dropped": record.lore_dropped,
        "memory_note": record.memory_note,
        "knowledge": list(record.knowledge),
        "skill": None if record.skill is None else _skill_data(record.skill),
        "experiment": None
        if record.experiment is None
        else {"id": record.experiment.experiment_id, "variant": record.experiment.variant},
        "overrides": None if record.overrides is None else _overrides_data(record.overrides),
        "params": _params_data(record.params),
        "routes": [_route_data(r) for r in record.routes],
        "stages": [{"name": s.name, "ms": round(s.ms, 3)} for s in record.stages],
        "total_ms": round(record.total_ms, 3),
        "usage": None
        if record.usage is None
        else {
            "prompt_tokens": record.usage.prompt_tokens,
            "completion_tokens": record.usage.completion_tokens,
        },
        "latency_ms": record.latency_ms,
        "first_token_ms": record.first_token_ms,
    }


def record_of(data: Mapping[str, Any]) -> TurnRecord:
    """The record ``record_data`` made; anything else is an ``InvalidInput`` saying so."""
    if data.get("format") != RECORD_FORMAT:
        raise InvalidInput(f"turn record format {data.get('format')!r} is not {RECORD_FORMAT}")
    try:
        usage = data["usage"]
        experiment = data["experiment"]
        skill = data["skill"]
        return TurnRecord(
            turn_id=str(data["turn_id"]),
            conversation_id=str(data["conversation_id"]),
            user_message_id=str(data["user_message_id"]),
            user=str(data["user"]),
            character_id=str(data["character_id"]),
            character_version=data["character_version"],
            created_at=datetime.fromisoformat(data["created_at"]),
            model=str(data["model"]),
            prompt=tuple(
                ChatMessage(Role(m["role"]), str(m["content"]), m.get("name"))
                for m in data["prompt"]
            ),
            prompt_tokens=int(data["prompt_tokens"]),
            lore=tuple(str(label) for label in data["lore"]),
            lore_dropped=int(data["lore_dropped"]),
            memory_note=data["memory_note"],
            knowledge=tuple(str(label) for label in data.get("knowledge", ())),
            skill=None if skill is None else SkillTaken(**skill),
            experiment=None
            if experiment is None
            else ExperimentTag(str(experiment["id"]), str(experiment["variant"])),
            overrides=None if data["overrides"] is None else _overrides_of(data["overrides"]),
            params=_params_of(data["params"]),
            routes=tuple(_route_of(r) for r in data["routes"]),
            stages=tuple(StageTime(str(s["name"]), float(s["ms"])) for s in data["stages"]),
            total_ms=float(data["total_ms"]),
            usage=None
            if usage is None
            else Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"])),
            latency_ms=data["latency_ms"],
            first_token_ms=data["first_token_ms"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"a broken turn record: {type(exc).__name__}: {exc}") from None


def _message_data(message: ChatMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.name is not None:
        data["name"] = message.name
    return data


def _skill_data(skill: SkillTaken) -> dict[str, Any]:
    return {"name": skill.name, "ok": skill.ok, "answered": skill.answered, "note": skill.note}


def _params_data(params: GenerationParams) -> dict[str, Any]:
    return {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "stop": list(params.stop),
        "seed": params.seed,
    }


def _params_of(data: Mapping[str, Any]) -> GenerationParams:
    return GenerationParams(
        max_tokens=int(data["max_tokens"]),
        temperature=float(data["temperature"]),
        top_p=float(data["top_p"]),
        stop=tuple(str(s) for s in data["stop"]),
        seed=data["seed"],
    )


def _overrides_data(overrides: Overrides) -> dict[str, Any]:
    generation = overrides.generation
    return {
        "character_version": overrides.character_version,
        "instructions": overrides.instructions,
        "route": None if overrides.route is None else list(overrides.route),
        "generation": {
            "max_tokens": generation.max_tokens,
            "temperature": generation.temperature,
            "top_p": generation.top_p,
        },
        "memory_enabled": overrides.memory_enabled,
    }


def _overrides_of(data: Mapping[str, Any]) -> Overrides:
    route = data["route"]
    return Overrides(
        character_version=data["character_version"],
        instructions=data["instructions"],
        route=None if route is None else tuple(str(name) for name in route),
        generation=SamplingOverrides(**data["generation"]),
        memory_enabled=data["memory_enabled"],
    )


def _route_data(route: RouteTaken) -> dict[str, Any]:
    return {
        "chain": list(route.chain),
        "backend": route.backend,
        "rounds": route.rounds,
        "retries": route.retries,
        "failed_over": route.failed_over,
        "cached": route.cached,
        "failures": [{"backend": a.backend, "outcome": a.outcome} for a in route.failures],
    }


def _route_of(data: Mapping[str, Any]) -> RouteTaken:
    return RouteTaken(
        chain=tuple(str(name) for name in data["chain"]),
        backend=data["backend"],
        rounds=int(data["rounds"]),
        failures=tuple(Attempt(str(a["backend"]), str(a["outcome"])) for a in data["failures"]),
        cached=bool(data["cached"]),
    )


class MemoryTurnRecords(TurnRecords):
    """Records kept in a dict, for as long as the object lives: a replay's scratch run
    (``personae/replay``) keeps its records here, never in the live store."""

    def __init__(self) -> None:
        self._records: dict[str, TurnRecord] = {}

    async def add(self, records: Sequence[TurnRecord]) -> int:
        for record in records:
            self._records[record.turn_id] = record
        return len(records)

    async def get(self, turn_id: str) -> TurnRecord | None:
        return self._records.get(turn_id)

    async def for_conversation(self, conversation_id: str) -> list[TurnRecord]:
        found = [r for r in self._records.values() if r.conversation_id == conversation_id]
        return sorted(found, key=lambda r: r.created_at)

    async def purge_before(self, moment: datetime) -> int:
        old = [key for key, r in self._records.items() if r.created_at < moment]
        for key in old:
            del self._records[key]
        return len(old)
