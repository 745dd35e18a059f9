"""What an experiment is: whom it targets, its variants and what each variant changes.

Parsed from a mapping (YAML in the config folder, or the admin API's JSON) into frozen
dataclasses, once; every mistake is an ``InvalidInput`` naming the field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from personae.errors import InvalidInput

CONTROL = "control"
BUCKETS = 10_000  # a weight is in hundredths of a percent of these: 1 bucket = 0.01 %


@dataclass(frozen=True, slots=True)
class Overrides:
    """What a variant changes for the turns assigned to it; None: as configured."""

    character_version: str | None = None  # a version hash (or a unique prefix of one)
    instructions: str | None = None  # an extra system note for the prompt
    route: tuple[str, ...] | None = None  # backend names, in fallback order
    generation: Mapping[str, Any] = field(default_factory=dict)  # e.g. temperature, max_tokens
    memory: Mapping[str, Any] = field(default_factory=dict)  # e.g. enabled, budget


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    percent: float  # of all targeted users; control takes what the others leave
    overrides: Overrides = Overrides()


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
        killed=bool(data.get("killed", False)),
        force_roles=_names(data, "force_roles") or ("admin",),
    )


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
    route = data.get("route")
    if route is not None and (
        not isinstance(route, list) or not all(isinstance(r, str) and r for r in route)
    ):
        raise InvalidInput(f"{where}: route must be a list of backend names")
    overrides = Overrides(
        character_version=_optional_text(data, "character_version", where),
        instructions=_optional_text(data, "instructions", where),
        route=tuple(route) if route is not None else None,
        generation=_mapping(data, "generation", where),
        memory=_mapping(data, "memory", where),
    )
    return Variant(_text(data, "name", where), float(percent), overrides)


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
