"""Characters: one immutable model for the native YAML format and Character Cards V1/V2/V3.

The fields follow the cards' semantics (see docs/characters.md for the mapping table):
``system_prompt`` and ``post_history_instructions`` replace the defaults when non-empty;
``creator_notes``, ``tags``, ``creator`` and ``version`` are for people and never reach a
prompt. What a card carries beyond these fields (unknown ``extensions`` keys, the lorebook,
unknown ``data`` keys) is kept as plain JSON data, so an imported card exports without loss.
The lorebook is also parsed (``book``); the loader attaches the books ``lorebooks``/``world`` name.
Parsing card bytes lives in ``personae.characters.cards``; this module parses YAML text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from personae.core.behaviour.locate import Locations, yaml_locations
from personae.core.behaviour.parse import parse_behaviour
from personae.core.behaviour.spec import BehaviourSpec
from personae.core.behaviour.validate import BehaviourInvalid
from personae.core.lorebook import Lorebook, parse_book
from personae.core.types import TEXT_ROLES, Role, SamplingOverrides
from personae.errors import CharacterDefinitionError

CHARACTER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
BookName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_START = re.compile(r"<START>", re.IGNORECASE)
BEHAVIOUR_IN_CARDS = "extensions.personae.behaviour"  # where a card carries the section

SourceFormat = Literal["yaml", "v1", "v2", "v3"]  # the definition's spec
Container = Literal["yaml", "json", "png", "charx"]  # the file it came in
# Never written in a file: where it came from, and the standalone lorebooks the loader attached.
SET_BY_READER = ("source_format", "source_container", "attached_lorebooks")


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


class MemoryOptions(BaseModel):
    """How a character uses the user's memory (docs/memory.md, "Partitions and scope")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Whether it may recall what the user told *other* characters; by default each
    #: (user, character) pair's memory is its own.
    cross_character: bool = False


class Asset(BaseModel):
    """A V3 card asset (icon, background, emotion, ...); unknown keys are kept."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    type: str
    uri: str  # https://, data:, embeded://path (in a CHARX) or ccdefault:
    name: str
    ext: str

    @model_validator(mode="after")
    def _plain_json(self) -> Asset:
        _check_json(self.model_extra or {}, "")
        return self


class CardExtras(BaseModel):
    """What a card carried that has no field of its own, kept so export loses nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: dict[str, Any] = Field(default_factory=dict)  # unknown keys inside ``data``
    top_level: dict[str, Any] = Field(default_factory=dict)  # unknown keys beside ``data``
    mirrored: tuple[str, ...] = ()  # V1 fields repeated beside ``data``, as SillyTavern writes
    mes_example: str | None = None  # the exact text when it is not the canonical join

    @field_validator("data", "top_level")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value, "")
        return value


@dataclass(frozen=True, slots=True)
class DepthPrompt:
    """SillyTavern's ``extensions.depth_prompt``: text inserted ``depth`` messages from the end
    of the chat (0 = after the newest message)."""

    prompt: str
    depth: int = 4
    role: Role = Role.SYSTEM


class Character(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=CHARACTER_ID.pattern)
    name: str = Field(min_length=1, max_length=100)
    nickname: str | None = None  # {{char}} when non-empty (V3)
    description: str = ""  # for people (galleries); the persona when persona is empty
    persona: str = ""  # a card's ``description``
    personality: str = ""
    scenario: str = ""
    greetings: tuple[str, ...] = ()  # ``first_mes`` then ``alternate_greetings``
    group_only_greetings: tuple[str, ...] = ()
    example_dialogues: tuple[str, ...] = ()  # ``mes_example`` split into <START> blocks
    system_prompt: str = ""
    post_history_instructions: str = ""
    creator_notes: str = ""
    creator_notes_multilingual: dict[str, str] | None = None
    creator: str = ""
    tags: tuple[str, ...] = ()
    version: str = "1"  # a card's ``character_version``
    sources: tuple[str, ...] | None = None  # a V3 card's ``source``
    creation_date: int | float | None = None  # unix seconds
    modification_date: int | float | None = None
    assets: tuple[Asset, ...] | None = None  # None: the spec's default (the card's own image)
    character_book: dict[str, Any] | None = None  # validated, kept raw; parsed: ``book``
    lorebooks: tuple[BookName, ...] = ()  # standalone books to attach (cards use ``world``)
    extensions: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None  # a backend name hint for routing
    skills: tuple[str, ...] = ()  # the skills it may use, by name, in trigger order
    behaviour: dict[str, Any] | None = None  # kept raw; parsed: ``machine`` (docs/behaviour.md)
    generation: GenerationOverrides = GenerationOverrides()
    memory: MemoryOptions = MemoryOptions()
    card_extras: CardExtras = CardExtras()
    source_format: SourceFormat = "yaml"
    source_container: Container = "yaml"
    # Parsed standalone books (``lorebooks`` + ``world``), set by the loader: see with_lorebooks.
    attached_lorebooks: SkipValidation[tuple[Lorebook, ...]] = Field(
        default=(), exclude=True, repr=False
    )

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

    @field_validator("example_dialogues")
    @classmethod
    def _split_examples(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # One block per <START>, so dropping examples drops whole conversations.
        return tuple(block for text in value for block in split_examples(text))

    @field_validator("extensions", "character_book", "behaviour")
    @classmethod
    def _plain_json(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_json(value, "")
        return value

    @field_validator("character_book")
    @classmethod
    def _book_parses(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Here an error names the field; ``book`` parses again on first use (the field stays raw).
        if value is not None:
            parse_book(value)
        return value

    @field_validator("behaviour")
    @classmethod
    def _behaviour_parses(
        cls, value: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        # Checked against the greetings and skills declared before it; a YAML file passes its
        # lines in the context (``parse_character_yaml``), so each error names its line.
        if value is not None:
            context = info.context or {}
            locations = context.get("behaviour_locations") or Locations()
            try:
                parse_behaviour(
                    value,
                    source=context.get("source", ""),
                    prefix="" if context.get("behaviour_locations") else BEHAVIOUR_IN_CARDS,
                    locate=locations.line,
                    duplicates=locations.duplicates,
                    greetings=len(info.data.get("greetings", ())),
                    skills=info.data.get("skills", ()),
                )
            except BehaviourInvalid as exc:
                raise PydanticCustomError(
                    "behaviour", "{problems}", {"problems": str(exc)}
                ) from exc
        return value

    @model_validator(mode="after")
    def _check_extensions(self) -> Character:
        _ = self.depth_prompt  # raises on a malformed depth prompt, at load time
        world = self.extensions.get("world")
        if world is not None and not isinstance(world, str):
            raise ValueError("extensions.world: expected the name of a lorebook")
        return self

    @property
    def persona_text(self) -> str:
        return self.persona or self.description

    @property
    def char_name(self) -> str:
        """What ``{{char}}`` stands for: the nickname when set, else the name."""
        return self.nickname or self.name

    @property
    def summary(self) -> str:
        """A line for people: the description, else the creator's notes."""
        return self.description or self.creator_notes

    @property
    def greeting(self) -> str | None:
        return self.greetings[0] if self.greetings else None

    @property
    def world(self) -> str | None:
        """The lorebook a SillyTavern card attaches by name (``extensions.world``)."""
        world = self.extensions.get("world")
        return world if isinstance(world, str) and world else None

    @cached_property
    def machine(self) -> BehaviourSpec | None:
        """The behaviour section, parsed (it was checked when the character loaded)."""
        if self.behaviour is None:
            return None
        return parse_behaviour(
            self.behaviour, source=self.id, greetings=len(self.greetings), skills=self.skills
        )

    @cached_property
    def book(self) -> Lorebook | None:
        """The card's own lorebook (``character_book``), parsed."""
        return None if self.character_book is None else parse_book(self.character_book)

    @property
    def lorebook_names(self) -> tuple[str, ...]:
        """The standalone books to attach: ``lorebooks``, then ``extensions.world``."""
        return tuple(dict.fromkeys((*self.lorebooks, *filter(None, (self.world,)))))

    @property
    def books(self) -> tuple[Lorebook, ...]:
        """Every book the prompt scans: the card's own, unless an attached book has its name
        (SillyTavern exports a world both ways; the file is the live copy), then the attached."""
        own, attached = self.book, self.attached_lorebooks
        if own is None or (own.name and own.name in {b.name for b in attached}):
            return attached
        return (own, *attached)

    def with_lorebooks(self, books: tuple[Lorebook, ...]) -> Character:
        """This character with its standalone books attached (named as it names them)."""
        return self.model_copy(update={"attached_lorebooks": books})

    @property
    def depth_prompt(self) -> DepthPrompt | None:
        raw = self.extensions.get("depth_prompt")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise ValueError("extensions.depth_prompt: expected an object")
        prompt, depth, role = raw.get("prompt", ""), raw.get("depth", 4), raw.get("role", "system")
        if not isinstance(prompt, str):
            raise ValueError("extensions.depth_prompt.prompt: expected a string")
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ValueError("extensions.depth_prompt.depth: expected a whole number >= 0")
        if role not in TEXT_ROLES:  # a tool message answers a call, never a card
            raise ValueError("extensions.depth_prompt.role: expected system, user or assistant")
        return DepthPrompt(prompt, depth, Role(role)) if prompt.strip() else None


def split_examples(text: str) -> list[str]:
    """``mes_example`` as blocks: split on ``<START>``, trimmed, empty ones gone."""
    return [block.strip() for block in _START.split(text) if block.strip()]


def join_examples(blocks: tuple[str, ...] | list[str]) -> str:
    """The canonical ``mes_example`` text for some blocks (inverse of ``split_examples``)."""
    return "\n".join(f"<START>\n{block}" for block in blocks)


def _check_json(value: Any, where: str) -> None:
    # Card data must survive a JSON round trip; YAML can hold dates, sets and other things.
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where or 'key'} {key!r}: keys must be strings")
            _check_json(item, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError(f"{where}: {type(value).__name__} is not JSON data")


def parse_character_yaml(text: str, *, source: str) -> Character:
    """Parse one character file's text. ``source`` names it in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CharacterDefinitionError(f"not valid YAML: {exc}", source=source) from exc
    if not isinstance(data, dict):
        raise CharacterDefinitionError("expected a mapping of fields at the top", source=source)
    for key in SET_BY_READER:
        if key in data:
            raise CharacterDefinitionError(
                f"{key}: set by the reader, not by a file", source=source
            )
    # Lines for the behaviour section's errors (safe_load keeps none).
    locations = yaml_locations(text) if data.get("behaviour") is not None else None
    return validate_character(data, source=source, behaviour_locations=locations)


def validate_character(
    data: dict[str, Any], *, source: str, behaviour_locations: Locations | None = None
) -> Character:
    """Build a Character from plain data, or raise ``CharacterDefinitionError``."""
    context = {"source": source, "behaviour_locations": behaviour_locations}
    try:
        return Character.model_validate(data, context=context)
    except ValidationError as exc:
        raise CharacterDefinitionError(describe(exc), source=source) from exc


def describe(exc: ValidationError, prefix: str = "") -> str:
    """A validation error as ``field.path: problem; ...``."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top)"
        problems.append(f"{prefix}{where}: {error['msg']}")
    return "; ".join(problems)
