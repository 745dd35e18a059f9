"""The pure parts of a replay (``personae/replay`` runs it): what it changes, the memory the
original turns had, and the side-by-side comparison of original and replayed turns.

A replay re-runs a recorded conversation's user messages, in order, with ``Overrides`` (an
experiment's variant, another character version, route or generation parameters), each
turn seeing the replayed history, and compares each reply, prompt, latency and token count
with the original's.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from personae.core.experiments.spec import CONTROL, Experiment
from personae.core.overrides import ExperimentTag, Overrides, parse_generation
from personae.core.prompt import AssembledPrompt
from personae.core.skill_stage import with_note
from personae.core.turn_record import TurnRecord
from personae.core.types import ChatMessage, OpenedTurn, SamplingOverrides
from personae.errors import InvalidInput

CountTokens = Callable[[str], int]
N = TypeVar("N", int, float)

#: The generation parameters ``--param name=value`` may set.
PARAMS = ("temperature", "top_p", "max_tokens")


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    conversation_id: str
    overrides: Overrides
    experiment: ExperimentTag | None = None  # when a variant's overrides were taken

    @property
    def label(self) -> str:
        """What the replay changed, in a few words."""
        parts: list[str] = []
        if self.experiment is not None:
            parts.append(f"variant {self.experiment.experiment_id}:{self.experiment.variant}")
        o = self.overrides
        if o.character_version is not None:
            parts.append(f"character version {o.character_version}")
        if o.route is not None:
            parts.append(f"route {','.join(o.route)}")
        for name in PARAMS:
            value = getattr(o.generation, name)
            if value is not None:
                parts.append(f"{name}={value}")
        if o.instructions is not None:
            parts.append("extra instructions")
        if o.memory_enabled is False:
            parts.append("memory off")
        return ", ".join(parts) or "no changes"


def plan_replay(
    conversation_id: str,
    *,
    variant: str | None = None,
    character_version: str | None = None,
    route: str | Sequence[str] | None = None,
    params: Sequence[str] | Mapping[str, object] = (),
    instructions: str | None = None,
    memory_enabled: bool | None = None,
    experiments: Callable[[str], Experiment | None] = lambda _id: None,
) -> ReplayPlan:
    """The overrides a replay runs with: a variant's (``EXP:VARIANT``), then what is named
    explicitly on top. Every mistake is an ``InvalidInput`` that names it."""
    conversation_id = conversation_id.strip()
    if not conversation_id:
        raise InvalidInput("a replay names the conversation to replay")
    base, tag = Overrides(), None
    if variant is not None:
        base, tag = _variant(variant, experiments)
    names = _route(route)
    generation = _generation(params)
    overrides = Overrides(
        character_version=character_version or base.character_version,
        instructions=instructions if instructions is not None else base.instructions,
        route=names if names is not None else base.route,
        generation=SamplingOverrides(
            max_tokens=_first(generation.max_tokens, base.generation.max_tokens),
            temperature=_first(generation.temperature, base.generation.temperature),
            top_p=_first(generation.top_p, base.generation.top_p),
        ),
        memory_enabled=memory_enabled if memory_enabled is not None else base.memory_enabled,
    )
    if overrides.empty:
        raise InvalidInput(
            "a replay changes something: a variant, a character version, a route or a parameter"
        )
    return ReplayPlan(conversation_id, overrides, tag)


def _first(value: N | None, fallback: N | None) -> N | None:
    return value if value is not None else fallback


def _variant(
    text: str, experiments: Callable[[str], Experiment | None]
) -> tuple[Overrides, ExperimentTag]:
    experiment_id, _, name = text.partition(":")
    if not experiment_id or not name:
        raise InvalidInput(f"--variant is EXPERIMENT:VARIANT, not {text!r}")
    experiment = experiments(experiment_id)
    if experiment is None:
        raise InvalidInput(f"no experiment {experiment_id!r}")
    if name == CONTROL:
        return experiment.control, ExperimentTag(experiment_id, name)
    found = experiment.variant(name)
    if found is None:
        raise InvalidInput(
            f"experiment {experiment_id!r} has no variant {name!r}; it has "
            + ", ".join(experiment.names)
        )
    return found.overrides, ExperimentTag(experiment_id, name)


def _route(route: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if route is None:
        return None
    names = route.split(",") if isinstance(route, str) else list(route)
    cleaned = tuple(name.strip() for name in names if name.strip())
    if not cleaned:
        raise InvalidInput("--route names at least one backend")
    return cleaned


def _generation(params: Sequence[str] | Mapping[str, object]) -> SamplingOverrides:
    if isinstance(params, Mapping):
        values = dict(params)
    else:
        values = {}
        for item in params:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise InvalidInput(f"--param is NAME=VALUE, not {item!r}")
            values[name.strip()] = value.strip()
    unknown = sorted(set(values) - set(PARAMS))
    if unknown:
        raise InvalidInput(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMS)}")
    return parse_generation(values, "replay")


class RecordedMemory:
    """The memory each original turn had (its record's note), given to the replayed turn of
    the same position: a replay sees what memory said then, not what it holds now (which
    includes the conversation's own later turns)."""

    reserved_tokens = 0

    def __init__(self, notes: Sequence[str | None]) -> None:
        self._notes = list(notes)  # by user turn, the first at 0

    async def enrich(
        self, prompt: AssembledPrompt, opened: OpenedTurn, count_tokens: CountTokens
    ) -> AssembledPrompt:
        index = opened.user_turn - 1
        note = self._notes[index] if 0 <= index < len(self._notes) else None
        return with_note(prompt, note, count_tokens)


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a compared turn: what the reply was and what it cost."""

    reply: str
    model: str | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    backend: str | None = None  # which backend answered, when recorded
    error: str | None = None  # the replayed turn failed: why (no reply)


@dataclass(frozen=True, slots=True)
class ComparedTurn:
    index: int  # 1-based, the user message's position
    user_text: str
    original: Side
    replayed: Side
    prompt_diff: tuple[str, ...] | None  # unified diff lines; None: a prompt not recorded

    @property
    def same_reply(self) -> bool:
        return self.original.reply.strip() == self.replayed.reply.strip()


@dataclass(frozen=True, slots=True)
class Totals:
    turns: int
    changed_replies: int
    changed_prompts: int
    failed: int
    original_latency_ms: float
    replayed_latency_ms: float
    original_tokens: int
    replayed_tokens: int


@dataclass(frozen=True, slots=True)
class ReplayReport:
    plan: ReplayPlan
    character_id: str
    turns: tuple[ComparedTurn, ...] = field(default_factory=tuple)

    @property
    def totals(self) -> Totals:
        turns = self.turns
        return Totals(
            turns=len(turns),
            changed_replies=sum(not t.same_reply for t in turns),
            changed_prompts=sum(bool(t.prompt_diff) for t in turns),
            failed=sum(t.replayed.error is not None for t in turns),
            original_latency_ms=sum(t.original.latency_ms or 0.0 for t in turns),
            replayed_latency_ms=sum(t.replayed.latency_ms or 0.0 for t in turns),
            original_tokens=sum(_tokens(t.original) for t in turns),
            replayed_tokens=sum(_tokens(t.replayed) for t in turns),
        )


def _tokens(side: Side) -> int:
    return (side.prompt_tokens or 0) + (side.completion_tokens or 0)


def prompt_lines(messages: Sequence[ChatMessage]) -> list[str]:
    """A prompt as lines to compare: each message's role (and speaker), then its text."""
    lines: list[str] = []
    for message in messages:
        who = f"{message.role.value}" + (f" ({message.name})" if message.name else "")
        lines.append(f"[{who}]")
        lines.extend(message.content.splitlines() or [""])
    return lines


def prompt_diff(original: TurnRecord | None, replayed: TurnRecord | None) -> tuple[str, ...] | None:
    """The unified diff from the original prompt to the replayed one (empty: the same), or
    None when either was not recorded."""
    if original is None or replayed is None:
        return None
    diff = difflib.unified_diff(
        prompt_lines(original.prompt),
        prompt_lines(replayed.prompt),
        "original",
        "replayed",
        n=1,
        lineterm="",
    )
    return tuple(diff)


def backend_of(record: TurnRecord | None) -> str | None:
    if record is None or not record.routes:
        return None
    return record.routes[-1].backend


def with_record(side: Side, record: TurnRecord | None) -> Side:
    """``side`` with what its record adds (the backend that answered)."""
    return replace(side, backend=backend_of(record)) if record is not None else side


def ms_label(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def tokens_label(side: Side) -> str:
    """``prompt+completion`` tokens, or ``-`` when unknown."""
    if side.prompt_tokens is None and side.completion_tokens is None:
        return "-"
    return f"{side.prompt_tokens or 0}+{side.completion_tokens or 0}"


class Replays(Protocol):
    """What the admin API needs to run replays (the composition root builds it)."""

    def plan(self, conversation_id: str, **changes: Any) -> ReplayPlan:
        """``plan_replay`` with the server's experiments; raises ``InvalidInput``."""
        ...

    async def run(self, plan: ReplayPlan) -> ReplayReport: ...

    def html(self, report: ReplayReport) -> str: ...


def report_data(report: ReplayReport) -> dict[str, Any]:
    """The report as JSON data (the admin API's answer)."""
    t = report.totals
    plan = report.plan
    return {
        "conversation_id": plan.conversation_id,
        "character_id": report.character_id,
        "changes": plan.label,
        "experiment": None
        if plan.experiment is None
        else {"id": plan.experiment.experiment_id, "variant": plan.experiment.variant},
        "turns": [
            {
                "index": turn.index,
                "user": turn.user_text,
                "original": _side_data(turn.original),
                "replayed": _side_data(turn.replayed),
                "same_reply": turn.same_reply,
                "prompt_diff": None if turn.prompt_diff is None else list(turn.prompt_diff),
            }
            for turn in report.turns
        ],
        "totals": {
            "turns": t.turns,
            "changed_replies": t.changed_replies,
            "changed_prompts": t.changed_prompts,
            "failed": t.failed,
            "original_latency_ms": round(t.original_latency_ms, 3),
            "replayed_latency_ms": round(t.replayed_latency_ms, 3),
            "original_tokens": t.original_tokens,
            "replayed_tokens": t.replayed_tokens,
        },
    }


def _side_data(side: Side) -> dict[str, Any]:
    return {
        "reply": side.reply,
        "model": side.model,
        "backend": side.backend,
        "latency_ms": side.latency_ms,
        "prompt_tokens": side.prompt_tokens,
        "completion_tokens": side.completion_tokens,
        "error": side.error,
    }
