"""Characters in the native YAML format, parsed and validated into one immutable model.

Character Cards (V1/V2/V3) map onto the same model in a later issue; the fields here follow
their semantics where they overlap (``system_prompt`` and ``post_history_instructions`` replace
the defaults when non-empty; ``tags`` and ``description`` are for people, not for prompts).
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from personae.core.types import SamplingOverrides
from personae.errors import CharacterDefinitionError

CHARACTER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class GenerationOverrides(BaseModel):
    """Per-character generation settings; unset fields keep the server's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=8192)

    def as_overrides(self) -> SamplingOverrides:
        return SamplingOverrides(
            max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p
        )


class Character(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=CHARACTER_ID.pattern)
    name: str = Field(min_length=1, max_length=100)
    description: str = ""  # shown in galleries; also used as persona when persona is empty
    persona: str = ""
    scenario: str = ""
    greetings: tuple[str, ...] = ()
    example_dialogues: tuple[str, ...] = ()
    system_prompt: str = ""
    post_history_instructions: str = ""
    model: str | None = None  # a backend name hint for routing
    tags: tuple[str, ...] = ()
    version: str = "1"
    generation: GenerationOverrides = GenerationOverrides()

    @model_validator(mode="before")
    @classmethod
    def _accept_single_greeting(cls, data: Any) -> Any:
        # ``greeting: text`` is the common case; ``greetings: [...]`` allows alternates.
        if isinstance(data, dict) and "greeting" in data:
            data = dict(data)
            greeting = data.pop("greeting")
            if "greetings" in data:
                raise ValueError("give either 'greeting' or 'greetings', not both")
            data["greetings"] = [greeting] if greeting else []
        return data

    @property
    def persona_text(self) -> str:
        return self.persona or self.description

    @property
    def greeting(self) -> str | None:
        return self.greetings[0] if self.greetings else None


def parse_character_yaml(text: str, *, source: str) -> Character:
    """Parse one character file's text. ``source`` names it in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CharacterDefinitionError(f"not valid YAML: {exc}", source=source) from exc
    if not isinstance(data, dict):
        raise CharacterDefinitionError("expected a mapping of fields at the top", source=source)
    try:
        return Character.model_validate(data)
    except ValidationError as exc:
        raise CharacterDefinitionError(_describe(exc), source=source) from exc


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top)"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)
