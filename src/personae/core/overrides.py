"""What one turn does differently from what is configured: an experiment's variant, or a
replay trying another version, route or parameters on a recorded conversation.

``ChatService`` applies them at the start of a turn; the parts they name win over the
character's and the server's settings, the caller's own sampling wishes still win over them
(``generation_params``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from personae.core.characters import Character, GenerationOverrides
from personae.core.types import GenerationParams, InboundMessage, SamplingOverrides
from personae.errors import InvalidInput

MEMORY_KEYS = frozenset({"enabled"})


@dataclass(frozen=True, slots=True)
class Overrides:
    """None or empty: as configured."""

    character_version: str | None = None  # a version hash, or a unique prefix of one
    instructions: str | None = None  # an extra system note for the prompt
    route: tuple[str, ...] | None = None  # backend names, in fallback order
    generation: SamplingOverrides = field(default_factory=SamplingOverrides)
    memory_enabled: bool | None = None  # False: no recall or profile in this turn's prompt

    @property
    def empty(self) -> bool:
        return self == Overrides()


NO_OVERRIDES = Overrides()


def generation_params(
    character: Character, inbound: InboundMessage, server: GenerationParams
) -> GenerationParams:
    """The parameters ``character``'s reply to ``inbound`` is generated with: the caller's
    wishes win over a variant's, over the character's, over the server's."""
    variant = (inbound.overrides or NO_OVERRIDES).generation
    return inbound.sampling.over(variant.over(character.generation.as_overrides().over(server)))


@dataclass(frozen=True, slots=True)
class ExperimentTag:
    """Which experiment and variant a turn ran under: recorded with the turn, labels metrics."""

    experiment_id: str
    variant: str


def parse_generation(data: Mapping[str, Any], where: str) -> SamplingOverrides:
    """``{temperature, top_p, max_tokens}`` checked as a character's own are."""
    try:
        return GenerationOverrides.model_validate(dict(data)).as_overrides()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'generation'}: {e['msg']}"
            for e in exc.errors()
        )
        raise InvalidInput(f"{where}: generation: {problems}") from None


def parse_memory(data: Mapping[str, Any], where: str) -> bool | None:
    unknown = sorted(set(data) - MEMORY_KEYS)
    if unknown:
        raise InvalidInput(f"{where}: memory: unknown setting(s) {', '.join(unknown)}")
    enabled = data.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidInput(f"{where}: memory.enabled must be true or false")
    return enabled
