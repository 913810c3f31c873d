"""Per-format readers: the text and metadata of one .txt, .md, .html or .pdf file.

Each reader raises :class:`~mograg.text.reading.Unreadable` with one line saying what is
wrong; :mod:`mograg.text.documents` turns that into a problem naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath
from typing import Any

from mograg.text.html import html_to_text
from mograg.text.reading import Unreadable, read_bytes

__all__ = ["SUPPORTED_SUFFIXES", "SUPPORTED_TEXT", "one_line", "read_document", "suffix_of"]

SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".txt",
    ".md",
    ".markdown",
    ".html",
    ".htm",
    ".pdf",
    ".jsonl",
    ".jsonl.gz",
)
SUPPORTED_TEXT = ", ".join(SUPPORTED_SUFFIXES)
_BINARY_SNIFF = 8192
_FENCE_RE = re.compile(r"^ {0,3}(```|~~~)")
_WS_RE = re.compile(r"\s+")


def suffix_of(name: str) -> str:
    """The supported suffix ``name`` ends with (lower case), else its last suffix."""
    low = name.lower()
    if low.endswith(".jsonl.gz"):
        return ".jsonl.gz"
    return PurePath(low).suffix


def _decode_text(data: bytes) -> str:
    """Decode UTF-8 (BOM stripped) and normalise line endings to ``\\n``."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unreadable("looks like UTF-16 text; convert it to UTF-8")
    if b"\x00" in data[:_BINARY_SNIFF]:
        raise Unreadable(f"looks binary (NUL bytes); supported file types: {SUPPORTED_TEXT}")
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unreadable(f"not valid UTF-8 (byte {e.start + skip}); convert it to UTF-8") from e
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _require_text(text: str) -> str:
    if not text.strip():
        raise Unreadable("empty file; nothing to index")
    return text


def _h1_content(line: str) -> str | None:
    """The text of a level-1 ATX heading line (CommonMark), else None. Linear time."""
    body = line.lstrip(" ")
    if len(line) - len(body) > 3 or not body.startswith("#"):
        return None
    rest = body[1:]
    if not rest or rest[0] not in " \t":
        return None
    content = rest.strip(" \t")
    # an optional closing sequence: spaces/tabs then only '#'s
    closing = content.rstrip("#")
    if closing != content and (not closing or closing[-1] in " \t"):
        content = closing.rstrip(" \t")
    return content.strip() or None


def _markdown_title(text: str) -> str | None:
    """The first level-1 ATX heading outside fenced code blocks."""
    in_fence = False
    for line in text.split("\n"):
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            title = _h1_content(line)
            if title:
                return title
    return None


def _load_text(path: Path, markdown: bool) -> tuple[str, dict[str, Any]]:
    text = _require_text(_decode_text(read_bytes(path)))
    title = _markdown_title(text) if markdown else None
    return text, {"title": title or path.stem}


def _load_html(path: Path) -> tuple[str, dict[str, Any]]:
    raw = _decode_text(read_bytes(path))
    _require_text(raw)
    text, title = html_to_text(raw)
    if not text.strip():
        raise Unreadable("no visible text in HTML; nothing to index")
    return text, {"title": title or path.stem}


def _load_pdf(path: Path) -> tuple[str, dict[str, Any]]:
    from mograg.text.context import looks_like_code
    from mograg.text.pdf import PdfError, pdf_text

    data = read_bytes(path)
    if not data.strip():
        raise Unreadable("empty file; nothing to index")
    try:
        got = pdf_text(data)
    except PdfError as e:
        raise Unreadable(f"cannot read PDF: {e}") from None
    title = got.metadata_title
    if not title or looks_like_code(title):  # e.g. an SEC accession number
        title = got.first_heading or path.stem
    meta: dict[str, Any] = {
        "title": title,
        "pages": len(got.page_starts),
        "page_starts": got.page_starts,
        "headings": [list(h) for h in got.headings],
    }
    if got.removed_lines:
        meta["removed_lines"] = got.removed_lines
    if got.labels:  # structural labels left out of the text (mograg.text.pdf)
        meta["labels"] = [[at, label] for at, label in got.labels]
    return got.text, meta


def one_line(e: BaseException) -> str:
    msg = _WS_RE.sub(" ", str(e)).strip()
    name = type(e).__name__
    return f"{name}: {msg}"[:200] if msg else name


def read_document(path: Path) -> tuple[str, dict[str, Any]]:
    """Text and metadata of one .txt/.md/.html/.pdf file.

    Raises:
        Unreadable: one line saying what is wrong with the file and what to do.
    """
    suffix = suffix_of(path.name)
    if suffix == ".txt":
        return _load_text(path, markdown=False)
    if suffix in (".md", ".markdown"):
        return _load_text(path, markdown=True)
    if suffix in (".html", ".htm"):
        return _load_html(path)
    if suffix == ".pdf":
        return _load_pdf(path)
    shown = suffix or "(none)"
    raise Unreadable(f"unsupported file type '{shown}'; supported: {SUPPORTED_TEXT}")
