"""The text of a PDF, page by page, with pypdf (pure Python, well kept, no system library)."""

from __future__ import annotations

import io

from pypdf import PdfReader

from personae.errors import InvalidInput


def pdf_to_text(data: bytes) -> str:
    """Every page's extracted text, pages separated by a blank line. ``InvalidInput`` for an
    encrypted PDF or one with no text layer (a scan: nothing to index without OCR)."""
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not reader.decrypt(""):
        raise InvalidInput("the PDF is encrypted")
    text = "\n\n".join(page.extract_text() for page in reader.pages).strip()
    if not text:
        raise InvalidInput("the PDF has no text layer (a scan needs OCR first)")
    return text
