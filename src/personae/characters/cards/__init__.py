"""Character Cards V1/V2/V3 in JSON, PNG/APNG and CHARX files (and the native YAML), as
bytes in and bytes out: ``decode_character`` and ``encode_character``."""

from personae.characters.cards.codec import (
    CONTAINERS,
    ExportFormat,
    decode_character,
    encode_character,
)
from personae.characters.cards.mapping import slug, v2_losses

__all__ = [
    "CONTAINERS",
    "ExportFormat",
    "decode_character",
    "encode_character",
    "slug",
    "v2_losses",
]
