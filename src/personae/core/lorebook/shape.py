"""The lorebook's JSON shape, as the Character Card V2/V3 specs give it, checked strictly.

Unknown keys are allowed (and kept by whoever keeps the raw data); a wrong type is an error
with its path, ``entries.0.keys: Input should be a valid list``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class EntryShape(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    keys: list[str]
    content: str
    extensions: dict[str, Any] = {}
    enabled: bool = True
    insertion_order: int | float = 0
    case_sensitive: bool | None = None
    use_regex: bool = False
    constant: bool | None = None
    name: str | None = None
    priority: int | float | None = None
    id: int | str | None = None
    comment: str | None = None
    selective: bool | None = None
    secondary_keys: list[str] | None = None
    position: str | int | None = None


class BookShape(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    name: str | None = None
    description: str | None = None
    scan_depth: int | None = Field(default=None, ge=0)
    token_budget: int | None = Field(default=None, ge=0)
    recursive_scanning: bool | None = None
    extensions: dict[str, Any] = {}
    entries: list[EntryShape]


def describe(exc: ValidationError) -> str:
    """A validation error as ``field.path: problem; ...``."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
        for error in exc.errors()
    )
