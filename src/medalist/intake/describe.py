"""The competition's description: which file holds it, and its text (HTML converted with html.parser)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

# (stem, suffixes) in order of preference; names compare case-insensitively.
_CANDIDATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("description", (".md", ".txt", ".html", ".htm")),
    ("readme", (".md", ".txt", "")),
    ("overview", (".md", ".txt", ".html", ".htm", "")),
)
_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "pre", "blockquote",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "dt", "dd",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "head", "title", "noscript"}


def find_description(names: list[str]) -> str | None:
    """The preferred description file among top-level file names, or None."""
    by_lower = {n.lower(): n for n in names}
    for stem, suffixes in _CANDIDATES:
        for suffix in suffixes:
            if stem + suffix in by_lower:
                return by_lower[stem + suffix]
    return None


def read_description(path: Path) -> str:
    """The description as plain text (HTML reduced to its text); '' when unreadable."""
    try:
        raw = path.read_bytes()
    except OSError:
        return ""
    text = decode_text(raw)
    if path.suffix.lower() in (".html", ".htm") or (
        not path.suffix and re.match(r"\s*<(!doctype|html|body|div|p|h\d)\b", text, re.I)
    ):
        text = html_to_text(text)
    return text.strip()


def decode_text(raw: bytes) -> str:
    """UTF-8 (BOM stripped) or, failing that, Latin-1."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Visible text of an HTML document, one block per line."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
