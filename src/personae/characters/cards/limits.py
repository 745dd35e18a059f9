"""Size limits for character files. A card comes from strangers on the internet: every size
is bounded before the bytes are read, decompressed or decoded."""

from __future__ import annotations

MAX_YAML_BYTES = 1_000_000  # a native character file
MAX_JSON_BYTES = 8 * 1024 * 1024  # a card's JSON, as a file, in a PNG chunk or in a CHARX
MAX_JSON_NESTING = 64  # objects and arrays inside each other
MAX_PNG_BYTES = 32 * 1024 * 1024  # a whole PNG/APNG file (the image is most of it)
MAX_CHARX_BYTES = 64 * 1024 * 1024  # a whole CHARX file, compressed
MAX_CHARX_UNCOMPRESSED = 256 * 1024 * 1024  # all its entries together, uncompressed
MAX_CHARX_ENTRIES = 1_000
MAX_CHARX_RATIO = 100  # uncompressed / compressed, for any entry over the floor below
CHARX_RATIO_FLOOR = 1024 * 1024  # small entries (JSON of spaces) may compress very well

MAX_BYTES_BY_SUFFIX = {
    ".yaml": MAX_YAML_BYTES,
    ".yml": MAX_YAML_BYTES,
    ".json": MAX_JSON_BYTES,
    ".png": MAX_PNG_BYTES,
    ".apng": MAX_PNG_BYTES,
    ".charx": MAX_CHARX_BYTES,
}
