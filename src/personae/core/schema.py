"""A small JSON-Schema validator for skill arguments: the subset skills use.

Supported: ``type`` (object, string, integer, number, boolean, array, null), ``properties``,
``required``, ``additionalProperties: false``, ``items``, ``enum``, ``minimum``, ``maximum``,
``minLength``, ``maxLength`` and ``pattern``. Other keywords are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "null": (type(None),),
}


def schema_errors(value: Any, schema: Mapping[str, Any], where: str = "") -> list[str]:
    """Every way ``value`` breaks ``schema``, as ``path: problem`` lines (empty: valid)."""
    here = where or "(arguments)"
    kind = schema.get("type")
    if isinstance(kind, str):
        expected = _TYPES.get(kind, ())
        is_bool = isinstance(value, bool)
        if not isinstance(value, expected) or (is_bool and kind in {"integer", "number"}):
            return [f"{here}: expected {kind}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{here}: expected one of {list(schema['enum'])!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{here}: must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{here}: must be <= {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{here}: must have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{here}: must have at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{here}: does not match {schema['pattern']!r}")
    if isinstance(value, list | tuple) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{index}]")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, where)
    return errors


def _object_errors(value: dict[str, Any], schema: Mapping[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    properties: Mapping[str, Any] = schema.get("properties", {})
    prefix = f"{where}." if where else ""
    for name in schema.get("required", ()):
        if name not in value:
            errors.append(f"{prefix}{name}: required")
    for name, item in value.items():
        if name in properties:
            errors += schema_errors(item, properties[name], f"{prefix}{name}")
        elif schema.get("additionalProperties") is False:
            errors.append(f"{prefix}{name}: not allowed")
    return errors
