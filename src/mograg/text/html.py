"""HTML to plain text: visible text only, blocks as lines / paragraphs, lists and tables
kept as separate sentences (Markdown-like markers)."""

from __future__ import annotations

import re
from typing import Any

_WS_RE = re.compile(r"\s+")
_MANY_NL_RE = re.compile(r"\n{3,}")

# HTML elements dropped with their content, and elements that start/end a block.
_HTML_DROP = frozenset({"script", "style", "nav", "head", "noscript", "template", "svg"})
_HTML_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
        "details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure",
        "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr",
        "html", "li", "main", "menu", "ol", "p", "pre", "section", "summary", "table",
        "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
# Blocks separated by a single newline rather than a blank line.
_HTML_LINE = frozenset({"li", "dt", "dd", "tr", "caption"})


def html_to_text(html: str) -> tuple[str, str | None]:
    """Visible text of ``html`` with blocks separated by newlines / blank lines."""
    from bs4 import BeautifulSoup
    from bs4.element import Comment, Declaration, Doctype, NavigableString, Tag

    try:
        from bs4.element import CData, ProcessingInstruction

        skip_strings: tuple[type, ...] = (
            Comment, Declaration, Doctype, CData, ProcessingInstruction
        )  # fmt: skip
    except ImportError:  # pragma: no cover - very old bs4
        skip_strings = (Comment, Declaration, Doctype)

    soup = BeautifulSoup(html, "html.parser")
    title = None
    if soup.title is not None:
        title = _WS_RE.sub(" ", soup.title.get_text()).strip() or None
    if title is None:
        h1 = soup.find("h1")
        if isinstance(h1, Tag):
            title = _WS_RE.sub(" ", h1.get_text()).strip() or None

    out: list[str] = []
    pending = 0  # newlines owed before the next text (0, 1 or 2)
    at_line_start = True

    marker_at = -1  # index in out of a list/table marker with nothing after it yet

    def brk(n: int) -> None:
        nonlocal pending
        if marker_at < 0:  # a block opening right after "- " stays on the marker's line
            pending = max(pending, n)

    def emit(s: str, marker: bool = False, raw: bool = False) -> None:
        nonlocal pending, at_line_start, marker_at
        if marker_at >= 0 and not marker and not s.strip():
            return  # the marker already ends with a space
        if marker_at >= 0 and not marker:
            s = s.lstrip(" ")
        if marker and not pending and not at_line_start:
            while out and out[-1].endswith(" "):
                out[-1] = out[-1].rstrip(" ")
        elif out and out[-1].endswith(" ") and not raw:
            s = s.lstrip(" ")  # one space between inline pieces
        if pending and out:
            while out and out[-1].endswith(" "):
                out[-1] = out[-1].rstrip(" ")
            out.append("\n" * pending)
            at_line_start = True
        pending = 0
        if at_line_start and not raw:
            s = s.lstrip(" ")
        if s:
            out.append(s)
            at_line_start = s.endswith("\n")
            marker_at = len(out) - 1 if marker else -1

    # Iterative walk (deeply nested pages would overflow recursion).
    stack: list[tuple[Any, bool, bool]] = [(soup, False, False)]
    while stack:
        node, closing, in_pre = stack.pop()
        if closing:
            if marker_at >= 0 and node.name in ("li", "td", "th"):
                del out[marker_at:]  # empty item: drop its marker
                marker_at = -1
                at_line_start = True
            if node.name in _HTML_BLOCK:
                brk(1 if node.name in _HTML_LINE else 2)
            continue
        if isinstance(node, NavigableString):
            if isinstance(node, skip_strings):
                continue
            s = str(node)
            if in_pre:
                for i, line in enumerate(s.replace("\r\n", "\n").split("\n")):
                    if i:
                        brk(1)
                    if line.strip():
                        emit(line.rstrip(), raw=True)
            else:
                s = _WS_RE.sub(" ", s)
                if s.strip() or (s and not at_line_start and not pending):
                    emit(s)
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name in _HTML_DROP:
            continue
        if name == "br":
            brk(1)
            continue
        if name in _HTML_BLOCK:
            brk(1 if name in _HTML_LINE else 2)
        # Markdown-like markers so list items and table rows stay separate sentences.
        if name == "li":
            emit("- ", marker=True)
        elif name in ("td", "th"):
            emit("| " if at_line_start or pending else " | ", marker=True)
        child_pre = in_pre or name == "pre"
        stack.append((node, True, in_pre))
        stack.extend((c, False, child_pre) for c in reversed(node.contents))
    text = "".join(out)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _MANY_NL_RE.sub("\n\n", text).strip("\n"), title
