"""Card JSON from bytes, and base64 text from PNG chunks, with errors that say what is wrong."""

from __future__ import annotations

import base64
import binascii
import json
from typing import NoReturn

from personae.characters.cards.limits import MAX_JSON_BYTES, MAX_JSON_NESTING
from personae.errors import CharacterDefinitionError


def decode_json(raw: bytes, *, source: str, what: str = "the file") -> object:
    """Parse UTF-8 JSON (a BOM is allowed) within the size and nesting limits."""
    if len(raw) > MAX_JSON_BYTES:
        _fail(source, f"{what} has {len(raw)} bytes of JSON; the limit is {MAX_JSON_BYTES}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CharacterDefinitionError(
            f"{what} is not UTF-8 text (byte {exc.start})", source=source
        ) from exc
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        ending = text.rstrip()
        cut = exc.pos >= len(ending) or not ending.endswith(("}", "]"))
        hint = " (truncated?)" if cut else ""
        raise CharacterDefinitionError(
            f"{what} is not valid JSON{hint}: {exc.msg} at line {exc.lineno} column {exc.colno}",
            source=source,
        ) from exc
    except (RecursionError, ValueError) as exc:
        raise CharacterDefinitionError(f"{what} is not usable JSON: {exc}", source=source) from exc
    if _nesting(value) > MAX_JSON_NESTING:
        _fail(source, f"{what} nests objects deeper than {MAX_JSON_NESTING} levels")
    return value


def decode_base64(text: str, *, source: str, what: str) -> bytes:
    """Strict base64 (whitespace ignored): a truncated or altered chunk is an error, not a
    silently shorter card."""
    compact = "".join(text.split())
    if len(compact) > MAX_JSON_BYTES * 4 // 3 + 4:
        _fail(source, f"{what} holds more than {MAX_JSON_BYTES} bytes")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CharacterDefinitionError(
            f"{what} is not valid base64 (truncated or corrupt): {exc}", source=source
        ) from exc


def encode_base64_json(value: object) -> str:
    raw = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _nesting(value: object) -> int:
    # Iterative: a recursive walk would itself be the stack overflow it guards against.
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _fail(source: str, message: str) -> NoReturn:
    raise CharacterDefinitionError(message, source=source)
