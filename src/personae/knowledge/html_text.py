"""The readable text of an HTML page, with the standard library's ``html.parser``.

Why that parser: it ships with Python (no compiled dependency), it is lenient the way
browsers are about broken markup, and it decodes entities; stripping markup needs no tree.
selectolax or BeautifulSoup would add a dependency for a job this small.
"""

from __future__ import annotations

from html.parser import HTMLParser

#: Elements whose content is not prose.
_SKIPPED = frozenset({"script", "style", "template", "noscript", "svg"})
#: Inline elements: their boundaries are not word boundaries (``<b>Bo</b>ld`` is one word).
_INLINE = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "i", "kbd", "mark",
     "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr"}
)  # fmt: skip


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping: list[str] = []  # open skipped elements (they may nest: svg in svg)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping.append(tag)
        elif tag not in _INLINE:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            if tag in self._skipping:  # close it and anything left open inside it
                del self._skipping[self._skipping.index(tag) :]
        elif tag not in _INLINE:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = (" ".join(line.split()) for line in "".join(collector.parts).splitlines())
    return "\n".join(line for line in lines if line)
