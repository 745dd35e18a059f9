"""Character Cards V1, V2 and V3, as plain JSON data, to and from the one ``Character`` model.

Lossless by construction: every field of the specs has a ``Character`` field, and whatever a
card carries beyond them (unknown ``data`` keys, unknown keys beside ``data``, the exact
``mes_example`` text) rides along in ``Character.card_extras`` and is written back on export.
The id of a card's character is ``extensions.personae.id`` when the card has one, else the
slug of its name (``slug``).
"""

from __future__ import annotations

import copy
import hashlib
import re
import unicodedata
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, ValidationError

from personae.core.characters import (
    CHARACTER_ID,
    Character,
    Container,
    GenerationOverrides,
    describe,
    join_examples,
    split_examples,
    validate_character,
)
from personae.errors import CharacterDefinitionError

CardSpec = Literal["v2", "v3"]

V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
V2_FIELDS = (
    *V1_FIELDS,
    *("creator_notes", "system_prompt", "post_history_instructions", "alternate_greetings"),
    *("character_book", "tags", "creator", "character_version", "extensions"),
)
V3_ONLY_FIELDS = (
    *("group_only_greetings", "assets", "nickname", "creator_notes_multilingual", "source"),
    *("creation_date", "modification_date"),
)
SPECS: dict[str, CardSpec] = {"chara_card_v2": "v2", "chara_card_v3": "v3"}
SPEC_NAMES = {"v2": ("chara_card_v2", "2.0"), "v3": ("chara_card_v3", "3.0")}
PERSONAE_KEY = "personae"  # our namespace in ``extensions``: id, model, generation, lorebooks


class _CardData(BaseModel):
    # Types as the specs give them; strict, so ``"tags": "a,b"`` is an error, not a guess.
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    creator_notes: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: list[str] = []
    character_book: dict[str, Any] | None = None
    tags: list[str] = []
    creator: str = ""
    character_version: str = ""
    extensions: dict[str, Any] = {}
    group_only_greetings: list[str] = []
    assets: list[dict[str, Any]] | None = None
    nickname: str | None = None
    creator_notes_multilingual: dict[str, str] | None = None
    source: list[str] | None = None
    creation_date: int | float | None = None
    modification_date: int | float | None = None


def slug(name: str) -> str:
    """The id a card gets from its name: lower-case ASCII letters, digits and dashes; a name
    with none of those (say, all Japanese) gets ``character-`` and a hash of the name."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    if text:
        return text
    return "character-" + hashlib.sha256(name.encode()).hexdigest()[:10]


def card_to_character(card: object, *, source: str, container: Container) -> Character:
    """A parsed card (any spec) as a Character, or ``CharacterDefinitionError``."""
    if not isinstance(card, dict):
        _fail(source, "expected a JSON object (a character card) at the top")
    spec = card.get("spec")
    if spec is None:  # V1 has no spec: its fields are the whole object
        top = {k: v for k, v in card.items() if k not in V1_FIELDS}
        return _to_character(card, "v1", V1_FIELDS, source, container, top, ())
    if spec == "lorebook_v3":
        _fail(source, "this is a standalone lorebook (lorebook_v3), not a character card")
    if spec not in SPECS:
        _fail(source, f"unsupported spec {spec!r}; expected chara_card_v2 or chara_card_v3")
    data = card.get("data")
    if not isinstance(data, dict):
        _fail(source, "'data' must be an object holding the card's fields")
    fmt = SPECS[spec]
    known = V2_FIELDS if fmt == "v2" else (*V2_FIELDS, *V3_ONLY_FIELDS)
    rest = {k: v for k, v in card.items() if k not in ("spec", "spec_version", "data")}
    mirrored = tuple(k for k in V1_FIELDS if k in rest and rest[k] == data.get(k))
    top = {k: v for k, v in rest.items() if k not in mirrored}
    return _to_character(data, fmt, known, source, container, top, mirrored)


def _to_character(
    data: dict[str, Any],
    fmt: Literal["v1", "v2", "v3"],
    known: tuple[str, ...],
    source: str,
    container: Container,
    top_level: dict[str, Any],
    mirrored: tuple[str, ...],
) -> Character:
    prefix = "" if fmt == "v1" else "data."
    try:
        # A null where a string belongs is read as absent (some editors write them).
        d = _CardData.model_validate(
            {k: v for k, v in data.items() if k in known and v is not None}
        )
    except ValidationError as exc:
        _fail(source, describe(exc, prefix))
    character_id, model, generation, lorebooks = _personae(d.extensions, d.name, source)
    blocks = split_examples(d.mes_example)
    greetings = (
        [d.first_mes, *d.alternate_greetings] if d.first_mes or d.alternate_greetings else []
    )
    fields: dict[str, Any] = {
        "id": character_id,
        "name": d.name,
        "nickname": d.nickname,
        "persona": d.description,
        "personality": d.personality,
        "scenario": d.scenario,
        "greetings": greetings,
        "group_only_greetings": d.group_only_greetings,
        "example_dialogues": blocks,
        "system_prompt": d.system_prompt,
        "post_history_instructions": d.post_history_instructions,
        "creator_notes": d.creator_notes,
        "creator_notes_multilingual": d.creator_notes_multilingual,
        "creator": d.creator,
        "tags": d.tags,
        "version": d.character_version,
        "sources": d.source,
        "creation_date": d.creation_date,
        "modification_date": d.modification_date,
        "assets": d.assets,
        "character_book": d.character_book,
        "lorebooks": lorebooks,
        "skills": _skill_names(d.extensions, source),
        "behaviour": d.extensions.get(PERSONAE_KEY, {}).get("behaviour"),
        "extensions": d.extensions,
        "model": model,
        "generation": generation,
        "card_extras": {
            "data": {k: v for k, v in data.items() if k not in known} if fmt != "v1" else {},
            "top_level": top_level,
            "mirrored": mirrored,
            "mes_example": d.mes_example if d.mes_example != join_examples(blocks) else None,
        },
        "source_format": fmt,
        "source_container": container,
    }
    return validate_character(fields, source=source)


def _personae(
    extensions: dict[str, Any], name: str, source: str
) -> tuple[str, str | None, GenerationOverrides, list[str]]:
    ours = extensions.get(PERSONAE_KEY, {})
    if not isinstance(ours, dict):
        _fail(source, f"extensions.{PERSONAE_KEY}: expected an object")
    character_id = ours.get("id", slug(name))
    if not isinstance(character_id, str) or not CHARACTER_ID.match(character_id):
        _fail(source, f"extensions.{PERSONAE_KEY}.id: {character_id!r} is not a valid id")
    model = ours.get("model")
    if model is not None and not isinstance(model, str):
        _fail(source, f"extensions.{PERSONAE_KEY}.model: expected a backend name")
    try:
        generation = GenerationOverrides.model_validate(ours.get("generation") or {})
    except ValidationError as exc:
        _fail(source, describe(exc, f"extensions.{PERSONAE_KEY}.generation."))
    lorebooks = ours.get("lorebooks", [])
    if not isinstance(lorebooks, list) or not all(isinstance(n, str) for n in lorebooks):
        _fail(source, f"extensions.{PERSONAE_KEY}.lorebooks: expected a list of lorebook names")
    return character_id, model, generation, lorebooks


def _skill_names(extensions: dict[str, Any], source: str) -> list[str]:
    skills = extensions.get(PERSONAE_KEY, {}).get("skills", [])
    if not isinstance(skills, list) or not all(isinstance(n, str) for n in skills):
        _fail(source, f"extensions.{PERSONAE_KEY}.skills: expected a list of skill names")
    return skills


def character_to_card(character: Character, spec: CardSpec) -> dict[str, Any]:
    """A Character as a V2 or V3 card object (V2 cannot hold the V3-only fields: see
    ``v2_losses``)."""
    c = character
    data: dict[str, Any] = dict(c.card_extras.data)
    data.update(
        name=c.name,
        description=c.persona_text,
        personality=c.personality,
        scenario=c.scenario,
        first_mes=c.greetings[0] if c.greetings else "",
        mes_example=_mes_example(c),
        # A native character's gallery line is what cards call creator notes.
        creator_notes=c.creator_notes or c.description,
        system_prompt=c.system_prompt,
        post_history_instructions=c.post_history_instructions,
        alternate_greetings=list(c.greetings[1:]),
        tags=list(c.tags),
        creator=c.creator,
        character_version=c.version,
        extensions=_extensions(c),
    )
    if c.character_book is not None:
        data["character_book"] = c.character_book
    if spec == "v3":
        data["group_only_greetings"] = list(c.group_only_greetings)
        optional = {
            "assets": None if c.assets is None else [a.model_dump() for a in c.assets],
            "nickname": c.nickname,
            "creator_notes_multilingual": c.creator_notes_multilingual,
            "source": None if c.sources is None else list(c.sources),
            "creation_date": c.creation_date,
            "modification_date": c.modification_date,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
    name, version = SPEC_NAMES[spec]
    card: dict[str, Any] = {"spec": name, "spec_version": version, "data": data}
    card.update({key: data[key] for key in c.card_extras.mirrored})
    card.update(c.card_extras.top_level)
    # A copy: the card is the caller's to change; the character's data must stay as loaded.
    return copy.deepcopy(card)


def v2_losses(character: Character) -> list[str]:
    """The V3-only fields a V2 card of this character would lose."""
    c = character
    present = {
        "group_only_greetings": bool(c.group_only_greetings),
        "assets": c.assets is not None,
        "nickname": c.nickname is not None,
        "creator_notes_multilingual": c.creator_notes_multilingual is not None,
        "source": c.sources is not None,
        "creation_date": c.creation_date is not None,
        "modification_date": c.modification_date is not None,
    }
    return [name for name, there in present.items() if there]


def _mes_example(c: Character) -> str:
    raw = c.card_extras.mes_example
    # The exact text while it still says the same; the canonical join once blocks changed.
    if raw is not None and split_examples(raw) == list(c.example_dialogues):
        return raw
    return join_examples(c.example_dialogues)


def _extensions(c: Character) -> dict[str, Any]:
    extensions = dict(c.extensions)
    ours = dict(extensions.get(PERSONAE_KEY) or {})
    if c.id != slug(c.name) or "id" in ours:
        ours["id"] = c.id
    if c.model:
        ours["model"] = c.model
    generation = c.generation.model_dump(exclude_none=True)
    if generation:
        ours["generation"] = generation
    ours.pop("skills", None)  # the field is the truth, whatever the card said before
    if c.skills:
        ours["skills"] = list(c.skills)
    if c.lorebooks:  # a native character's books; a card's own are already in ``ours``
        ours["lorebooks"] = list(c.lorebooks)
    ours.pop("behaviour", None)  # like skills: the field is the truth
    if c.behaviour is not None:
        ours["behaviour"] = c.behaviour
    if ours:
        extensions[PERSONAE_KEY] = ours
    elif extensions.get(PERSONAE_KEY):  # it held only what the fields no longer say
        del extensions[PERSONAE_KEY]
    return extensions


def _fail(source: str, message: str) -> NoReturn:
    raise CharacterDefinitionError(message, source=source)
