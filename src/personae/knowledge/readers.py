"""A document's text, by its format: plain text and Markdown as they are, HTML without its
markup (``html_text``), PDF through pypdf (``pdf_text``). Every failure to read is an
``UnreadableDocument`` that says which file and why."""

from __future__ import annotations

from pathlib import Path, PurePath

from personae.errors import InvalidInput
from personae.knowledge.html_text import html_to_text
from personae.knowledge.pdf_text import pdf_to_text

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES

#: Larger files are refused rather than read into memory: a knowledge document is a manual,
#: not a data dump.
MAX_DOCUMENT_BYTES = 64 * 2**20


class UnreadableDocument(InvalidInput):
    """A document that cannot be turned into text; its earlier chunks stay."""


def is_document(path: PurePath) -> bool:
    """A file the knowledge folder indexes: a known suffix, not hidden (editors' temporary
    files start with a dot)."""
    return path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def read_document(file: Path) -> bytes:
    """The file's bytes; ``FileNotFoundError`` if it is gone, ``UnreadableDocument`` if it is
    too large (checked before reading) or cannot be read."""
    try:
        size = file.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise UnreadableDocument(f"{file.name}: {size} bytes, over {MAX_DOCUMENT_BYTES}")
        return file.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:  # permissions, a folder where a file was
        raise UnreadableDocument(f"{file.name}: cannot be read ({exc})") from exc


def document_text(name: str, data: bytes) -> str:
    """The text of the document ``name`` (its suffix decides the format) whose bytes are
    ``data``."""
    suffix = PurePath(name).suffix.lower()
    if len(data) > MAX_DOCUMENT_BYTES:
        raise UnreadableDocument(f"{name}: {len(data)} bytes, over {MAX_DOCUMENT_BYTES}")
    if suffix in PDF_SUFFIXES:
        try:
            return pdf_to_text(data)
        except Exception as exc:  # pypdf raises many kinds on a malformed file
            raise UnreadableDocument(f"{name}: not a readable PDF ({exc})") from exc
    if suffix not in TEXT_SUFFIXES | HTML_SUFFIXES:
        raise UnreadableDocument(f"{name}: not a knowledge format ({', '.join(sorted(SUFFIXES))})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument(f"{name}: not UTF-8 text ({exc})") from exc
    return html_to_text(text) if suffix in HTML_SUFFIXES else text
