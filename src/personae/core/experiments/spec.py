"""What an experiment is: whom it targets, its variants and what each variant changes.

Parsed from a mapping (YAML in the config folder, or the admin API's JSON) into frozen
dataclasses, once; every mistake is an ``InvalidInput`` naming the field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from personae.core.overrides import Overrides, parse_generation, parse_memory
from personae.errors import InvalidInput

CONTROL = "control"
BUCKETS = 10_000  # a weight is in hundredths of a percent of these: 1 bucket = 0.01 %


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    percent: float  # of all targeted users; control takes what the others leave
    overrides: Overrides = field(default_factory=Overrides)


@dataclass(frozen=True, slots=True)
class Targeting:
    """Who is in the experiment at all; an empty list matches everyone."""

    characters: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def matches(self, *, character: str, role: str, channel: str, tags: Sequence[str] = ()) -> bool:
        return (
            _any_of(self.characters, [character])
            and _any_of(self.roles, [role])
            and _any_of(self.channels, [channel])
            and _any_of(self.tags, tags)
        )


@dataclass(frozen=True, slots=True)
class Experiment:
    id: str
    variants: tuple[Variant, ...]  # without control: control is every user not in one
    targeting: Targeting = Targeting()
    killed: bool = False  # the kill switch: everyone is in control, at once
    force_roles: tuple[str, ...] = ("admin",)  # who may force a variant (testers' colouring)
    # What control's turns use: a gray release pins control to the *old* character version
    # here, so making the new file current does not hand it to everyone.
    control: Overrides = field(default_factory=Overrides)
    description: str = ""  # for people: what it tests and why

    @property
    def names(self) -> tuple[str, ...]:
        return (CONTROL, *(v.name for v in self.variants))

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)


def _any_of(wanted: Sequence[str], have: Sequence[str]) -> bool:
    return not wanted or any(item in wanted for item in have)


def parse_experiment(data: Mapping[str, Any]) -> Experiment:
    """An experiment from its YAML/JSON shape (docs/experiments.md)."""
    experiment_id = _text(data, "id")
    unknown = sorted(set(data) - _EXPERIMENT_KEYS)
    if unknown:
        raise InvalidInput(f"experiment {experiment_id!r}: unknown field(s) {', '.join(unknown)}")
    raw_variants = data.get("variants")
    if not isinstance(raw_variants, list) or not raw_variants:
        raise InvalidInput(f"experiment {experiment_id!r}: variants must be a non-empty list")
    variants = tuple(_variant(experiment_id, i, v) for i, v in enumerate(raw_variants))
    names = [v.name for v in variants]
    if CONTROL in names or len(set(names)) != len(names):
        raise InvalidInput(
            f"experiment {experiment_id!r}: variant names must be unique and not {CONTROL!r}"
        )
    cap = region_percent(len(variants))
    for variant in variants:
        if variant.percent > cap:
            raise InvalidInput(
                f"experiment {experiment_id!r}: variant {variant.name!r} asks for "
                f"{variant.percent} %; with {len(variants)} variants each may have at most "
                f"{cap:g} % (each ramps within its own share of users, so ramping one never "
                "moves users of another)"
            )
    targeting = data.get("targeting") or {}
    if not isinstance(targeting, Mapping):
        raise InvalidInput(f"experiment {experiment_id!r}: targeting must be a mapping")
    return Experiment(
        id=experiment_id,
        variants=variants,
        targeting=Targeting(**{k: _names(targeting, k) for k in _TARGET_KEYS}),
        killed=_flag(experiment_id, data, "killed"),
        force_roles=_names(data, "force_roles") or ("admin",),
        control=_control(experiment_id, data),
        description=_description(experiment_id, data),
    )


def _description(experiment_id: str, data: Mapping[str, Any]) -> str:
    value = data.get("description") or ""
    if not isinstance(value, str):
        raise InvalidInput(f"experiment {experiment_id!r}: description must be text")
    return value


def _control(experiment_id: str, data: Mapping[str, Any]) -> Overrides:
    where = f"experiment {experiment_id!r}: control"
    control = _mapping(data, "control", f"experiment {experiment_id!r}")
    unknown = sorted(set(control) - _OVERRIDE_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(unknown)}")
    return _overrides(control, where)


def experiment_data(experiment: Experiment) -> dict[str, Any]:
    """The YAML/JSON shape of an experiment: ``parse_experiment`` of it is the same
    experiment (what the store keeps and the admin API shows)."""
    data: dict[str, Any] = {
        "id": experiment.id,
        "description": experiment.description,
        "targeting": {k: list(getattr(experiment.targeting, k)) for k in _TARGET_KEYS},
        "force_roles": list(experiment.force_roles),
        "killed": experiment.killed,
        "control": overrides_data(experiment.control),
        "variants": [
            {"name": v.name, "percent": v.percent, **overrides_data(v.overrides)}
            for v in experiment.variants
        ],
    }
    return data


def overrides_data(overrides: Overrides) -> dict[str, Any]:
    """The fields an override sets, in the shape ``_overrides`` reads."""
    data: dict[str, Any] = {}
    if overrides.character_version is not None:
        data["character_version"] = overrides.character_version
    if overrides.instructions is not None:
        data["instructions"] = overrides.instructions
    if overrides.route is not None:
        data["route"] = list(overrides.route)
    generation = {
        k: getattr(overrides.generation, k)
        for k in ("temperature", "top_p", "max_tokens")
        if getattr(overrides.generation, k) is not None
    }
    if generation:
        data["generation"] = generation
    if overrides.memory_enabled is not None:
        data["memory"] = {"enabled": overrides.memory_enabled}
    return data


_EXPERIMENT_KEYS = frozenset(
    {"id", "variants", "targeting", "killed", "force_roles", "control", "description"}
)
_OVERRIDE_KEYS = frozenset({"character_version", "instructions", "route", "generation", "memory"})


_TARGET_KEYS = ("characters", "roles", "channels", "tags")


def region_percent(variant_count: int) -> float:
    """The most of all users one variant can take: each variant owns an equal share."""
    return 100.0 / variant_count


def _variant(experiment_id: str, index: int, data: object) -> Variant:
    where = f"experiment {experiment_id!r}: variants[{index}]"
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where} must be a mapping")
    percent = data.get("percent", 0)
    if isinstance(percent, bool) or not isinstance(percent, int | float) or percent < 0:
        raise InvalidInput(f"{where}: percent must be a number from 0")
    if round(percent * BUCKETS / 100) != percent * BUCKETS / 100:
        raise InvalidInput(f"{where}: percent has more than two decimals")
    unknown = sorted(set(data) - _OVERRIDE_KEYS - {"name", "percent"})
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(unknown)}")
    return Variant(_text(data, "name", where), float(percent), _overrides(data, where))


def _overrides(data: Mapping[str, Any], where: str) -> Overrides:
    route = data.get("route")
    if route is not None and (
        not isinstance(route, list) or not all(isinstance(r, str) and r for r in route)
    ):
        raise InvalidInput(f"{where}: route must be a list of backend names")
    return Overrides(
        character_version=_optional_text(data, "character_version", where),
        instructions=_optional_text(data, "instructions", where),
        route=tuple(route) if route is not None else None,
        generation=parse_generation(_mapping(data, "generation", where), where),
        memory_enabled=parse_memory(_mapping(data, "memory", where), where),
    )


def _flag(experiment_id: str, data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"experiment {experiment_id!r}: {key} must be true or false")
    return value


def _text(data: Mapping[str, Any], key: str, where: str = "experiment") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: {key} must be a non-empty string")
    return value.strip()


def _optional_text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if data.get(key) is None else _text(data, key, where)


def _mapping(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: {key} must be a mapping")
    return dict(value)


def _names(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{key} must be a list of names")
    return tuple(value)
