"""Documents to text, per format; every unreadable one is a clear ``UnreadableDocument``."""

from __future__ import annotations

from pathlib import Path, PurePath

import pytest

from personae.knowledge.readers import (
    MAX_DOCUMENT_BYTES,
    UnreadableDocument,
    document_text,
    is_document,
    read_document,
)
from tests.knowledge.pdfs import make_pdf


def test_text_and_markdown_are_read_as_they_are() -> None:
    assert document_text("a.txt", "Plain\ntext é".encode()) == "Plain\ntext é"
    markdown = "# Title\n\n- a *list* item\n"
    assert document_text("notes.MD", ("\ufeff" + markdown).encode()) == markdown  # BOM dropped


def test_html_loses_its_markup_scripts_and_styles_but_keeps_word_boundaries() -> None:
    html = """<!doctype html><html><head><title>Opening hours</title>
    <style>p { color: red }</style><script>var x = "<p>not text</p>";</script></head>
    <body><h1>Hours</h1><p>Open <b>Mon</b>day&ndash;Friday</p><p>Closed</p>
    <ul><li>Tea &amp; cake</li><li>Bread</li></ul><noscript>enable JS</noscript>
    <p>Unclosed paragraph<div>next block</div></body></html>"""
    text = document_text("page.html", html.encode())
    assert text.splitlines() == [
        "Opening hours",
        "Hours",
        "Open Monday\u2013Friday",  # &ndash; decoded
        "Closed",
        "Tea & cake",
        "Bread",
        "Unclosed paragraph",
        "next block",
    ]


def test_a_pdf_is_read_page_by_page() -> None:
    data = make_pdf([["The (first) page."], ["The second page."]])
    assert document_text("guide.pdf", data) == "The (first) page.\n\nThe second page."


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("broken.pdf", b"%PDF-1.4\nthis is not a pdf body", "not a readable PDF"),
        ("cut.pdf", make_pdf([["Half a file"]])[:120], "not a readable PDF"),
        ("empty.pdf", make_pdf([[]]), "no text layer"),
        ("latin1.txt", "caf\xe9".encode("latin-1"), "not UTF-8"),
        ("page.html", b"\xff\xfe<p>x</p>", "not UTF-8"),
        ("sheet.xlsx", b"PK..", "not a knowledge format"),
    ],
)
def test_an_unreadable_document_says_which_and_why(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableDocument) as caught:
        document_text(name, data)
    assert str(caught.value).startswith(f"{name}: ")
    assert reason in str(caught.value)


def test_an_oversized_document_is_refused_before_parsing() -> None:
    with pytest.raises(UnreadableDocument, match="bytes, over"):
        document_text("huge.txt", b"x" * (MAX_DOCUMENT_BYTES + 1))


def test_which_files_are_documents() -> None:
    assert all(is_document(PurePath(n)) for n in ("a.txt", "b.Md", "c.htm", "d.PDF"))
    assert not any(is_document(PurePath(n)) for n in (".a.txt.swp", ".hidden.md", "x.docx", "y"))


def test_reading_a_file_checks_its_size_first_and_names_what_went_wrong(tmp_path: Path) -> None:
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as file:
        file.truncate(MAX_DOCUMENT_BYTES + 1)  # sparse: nothing is written or read
    with pytest.raises(UnreadableDocument, match=r"^huge.txt: \d+ bytes, over"):
        read_document(huge)
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(UnreadableDocument, match=r"^folder.md: cannot be read"):
        read_document(tmp_path / "folder.md")
    with pytest.raises(FileNotFoundError):
        read_document(tmp_path / "gone.txt")
    (tmp_path / "ok.txt").write_text("fine")
    assert read_document(tmp_path / "ok.txt") == b"fine"
