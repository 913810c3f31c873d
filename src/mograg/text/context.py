"""What every chunk is BM25-counted and, where it names a section, embedded with: its
document's title, the dates and periods the document is about, and the heading path of
its section.

Five quarters of one company's filings share whole paragraphs; a chunk alone does not
say whose and when, so neither dense nor BM25 scores can tell them apart. The context
line is prepended to the text that is *tokenised* (and, see below, *embedded*) only;
every returned hit stays an exact slice of the stored document text.

**Which chunks' vectors get the line** (:func:`chunk_contexts` with
``sectioned_only``): only those whose line names a section (a heading or a speaker
label). A line that is just the document's title and periods is the same for every
chunk of the document: mixed into the vectors it moves the whole document by how much
the question resembles its title, a document-level vote on top of the ones the document
prior (:mod:`mograg.retrieval.doc_prior`: BM25 over the whole document, periods) and the
graph (title matches) already cast. Against no context at all it cost the default
search 0.5 points on chroma-dev (three documents with bare titles) and 2.0 on
hotpotqa-train with the graph; left to BM25 and the prior, every dev set is within 0.4
points of no context or better, though medquad-dev keeps less of its gain (+1.8 instead
of +7.7 points without the graph, −0.4 instead of +7.4 with it; issue 13,
bench/results/context_devsets-*-s4.json). A line naming a section differs within the
document and says what part of it a chunk is: the earnings calls' speaker turns keep it
(figures and right-source rate unchanged).

The context is a function of a document's text and metadata alone (deterministic), so
BM25 postings of a segment can be rebuilt at any time. Indexes record it in their
manifest (``"context": CONTEXT_VERSION``); an index without the key has none.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mograg.text.periods import DATE_RE as _DATE_RE
from mograg.text.periods import PERIOD_RE as _PERIOD_RE

__all__ = [
    "CONTEXT_VERSION",
    "MIX_EVERY_LINE",
    "DocContext",
    "chunk_context",
    "chunk_contexts",
    "document_context",
    "find_periods",
    "looks_like_code",
    "recorded_section",
    "with_context",
]

CONTEXT_VERSION = "title-period-section-2"
# versions whose dense vectors mix every chunk's context line, not only a sectioned one
# (indexes built then keep doing so when documents are added)
MIX_EVERY_LINE = frozenset({"title-period-section-1"})
# a mixed dense vector is normalise(chunk + CONTEXT_WEIGHT * context line): the context
# says whose and when, the chunk still says what (a prefix would outweigh a short chunk)
CONTEXT_WEIGHT = 0.5
MAX_PERIODS = 3
MAX_PART_CHARS = 120
FIRST_PAGE_CHARS = 2000  # where a document's own date is looked for

_WS = re.compile(r"\s+")
_MD_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.M)
_CODE_RE = re.compile(r"^[\w.\-/#:]+$")
_JUNK_TITLE = re.compile(r"^(?:microsoft (?:word|powerpoint|excel) - |untitled\b)", re.I)


def looks_like_code(title: str) -> bool:
    """True for titles that are identifiers, not names: "0000320193-23-000064",
    "20080102X00002", "doc1.docx", "Microsoft Word - x.doc", "untitled"."""
    t = title.strip()
    if not t or _JUNK_TITLE.match(t):
        return True
    if " " not in t and _CODE_RE.match(t):
        letters = sum(c.isalpha() for c in t)
        return any(c.isdigit() for c in t) or "." in t or letters < 4
    return False


def _clean(s: str) -> str:
    s = _WS.sub(" ", s).strip()
    return s if len(s) <= MAX_PART_CHARS else s[: MAX_PART_CHARS - 1].rstrip() + "…"


def find_periods(text: str, title: str = "") -> list[str]:
    """Dates and periods a document is about, most telling first.

    Periods in the title come first, then the fiscal periods mentioned most often, then
    the first calendar date near the start (a report's or a call's own date).
    """
    out: list[str] = []

    def add(s: str) -> None:
        s = _clean(s)
        if s and s.lower() not in (o.lower() for o in out):
            out.append(s)

    for m in _PERIOD_RE.finditer(title):
        add(m.group(0))
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    for m in _PERIOD_RE.finditer(text):
        key = _WS.sub(" ", m.group(0)).strip()
        counts[key] += 1
        first_seen.setdefault(key, m.start())
    for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1], first_seen[kv[0]])):
        if len(out) >= MAX_PERIODS:
            break
        add(key)
    date = _DATE_RE.search(text[:FIRST_PAGE_CHARS])
    if date is not None:
        add(date.group(0))
    return out[: MAX_PERIODS + 1]


@dataclass
class DocContext:
    """A document's context: title, periods, and section paths by start offset."""

    title: str
    periods: list[str] = field(default_factory=list)
    section_starts: list[int] = field(default_factory=list)
    section_paths: list[str] = field(default_factory=list)
    name: str = ""  # what names the document: its title and file name (not a code)
    date: str = ""  # the first calendar date near its start (a report's or call's own)

    def section_at(self, offset: int) -> str:
        """Heading path of the section holding ``offset`` ("" before the first heading)."""
        i = bisect_right(self.section_starts, offset) - 1
        return self.section_paths[i] if i >= 0 else ""


def _recorded(text: str, metadata: dict[str, Any]) -> list[tuple[int, int, str, bool]]:
    """Section starts a loader recorded, in order: heading lines (``metadata["headings"]``,
    ``[[start, end], ...]``, slices of the text) and structural labels left out of the
    text (``metadata["labels"]``, ``[[offset, label], ...]``: the label of the text from
    offset on, see :mod:`mograg.text.pdf`), as ``(start, end, name, is_label)``."""
    found: list[tuple[int, int, str, bool]] = []
    for pair in metadata.get("headings") or []:
        try:
            a, b = int(pair[0]), int(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        if 0 <= a < b <= len(text):
            found.append((a, b, _clean(text[a:b]), False))
    for pair in metadata.get("labels") or []:
        try:
            at, label = int(pair[0]), _clean(str(pair[1]))
        except (TypeError, ValueError, IndexError):
            continue
        if 0 <= at <= len(text) and label:
            found.append((at, at, label, True))
    # a label and a heading at one offset: the label introduces the heading's text
    return sorted(found, key=lambda f: (f[0], not f[3]))


def _sections(text: str, metadata: dict[str, Any]) -> tuple[list[int], list[str]]:
    """Section starts and heading paths: Markdown headings (nested), else the heading
    lines and labels a loader recorded (:func:`_recorded`). A recorded heading's path is
    the heading; a label right after a heading (nothing but whitespace between), or a
    heading right after a label, nests under it, one level deep ("Q&A > Operator")."""
    starts: list[int] = []
    paths: list[str] = []
    if (isinstance(metadata.get("headings"), list) and metadata["headings"]) \
            or (isinstance(metadata.get("labels"), list) and metadata["labels"]):
        prev: tuple[int, int, str, bool] | None = None
        for a, b, name, is_label in _recorded(text, metadata):
            path = name
            if (prev is not None and (is_label or prev[3]) and prev[1] <= a
                    and not text[prev[1]:a].strip()):
                path = f"{prev[2]} > {name}"
            starts.append(a)
            paths.append(path)
            prev = (a, b, name, is_label)
        return starts, paths
    stack: list[tuple[int, str]] = []
    for m in _MD_HEADING.finditer(text):
        depth = len(m.group(1))
        while stack and stack[-1][0] >= depth:
            stack.pop()
        stack.append((depth, _clean(m.group(2))))
        starts.append(m.start())
        paths.append(" > ".join(h for _, h in stack))
    return starts, paths


def recorded_section(text: str, metadata: dict[str, Any], offset: int) -> str | None:
    """Heading path at ``offset`` from the headings and labels a loader recorded (PDF),
    None when it recorded none or ``offset`` precedes them (no scan of the text)."""
    if not metadata.get("headings") and not metadata.get("labels"):
        return None
    starts, paths = _sections(text, metadata)
    i = bisect_right(starts, offset) - 1
    return paths[i] if i >= 0 else None


def document_context(text: str, metadata: dict[str, Any]) -> DocContext:
    """The context of one document (see the module docstring)."""
    title = str(metadata.get("title") or "")
    if looks_like_code(title):
        title = ""
    starts, paths = _sections(text, metadata)
    source = str(metadata.get("source") or "")
    stem = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", source.rsplit("/", 1)[-1])
    hint = title if not stem or looks_like_code(stem) else f"{title} {stem}"
    date = _DATE_RE.search(text[:FIRST_PAGE_CHARS])
    return DocContext(_clean(title), find_periods(text, hint), starts, paths,
                      name=hint.strip(), date=_clean(date.group(0)) if date else "")


def chunk_context(ctx: DocContext, start: int) -> str:
    """The context line of a chunk starting at ``start`` ("" when there is none)."""
    parts = [ctx.title, ", ".join(ctx.periods), ctx.section_at(start)]
    seen: list[str] = []
    for p in parts:
        if p and p not in seen:
            seen.append(p)
    return " | ".join(seen)


def chunk_contexts(
    docs: Sequence[int], starts: Sequence[int], doc_text: Any, doc_metadata: Any,
    sectioned_only: bool = False,
) -> list[str]:
    """The context line of each chunk, given its document number and start offset.

    ``doc_text`` and ``doc_metadata`` are callables giving a document's text and metadata.
    ``sectioned_only``: "" for a chunk whose line names no section (the lines mixed into
    dense vectors, see the module docstring).
    """
    cache: dict[int, DocContext] = {}
    out: list[str] = []
    for d, s in zip(docs, starts, strict=True):
        ctx = cache.get(d)
        if ctx is None:
            ctx = cache[d] = document_context(doc_text(d), doc_metadata(d))
        out.append("" if sectioned_only and not ctx.section_at(s) else chunk_context(ctx, s))
    return out


def with_context(
    texts: Sequence[str],
    docs: Sequence[int],
    starts: Sequence[int],
    doc_text: Any,
    doc_metadata: Any,
) -> list[str]:
    """``texts`` (chunk texts) each prefixed by its document's context line.

    Args:
        texts: the chunk texts.
        docs, starts: document number and start offset of each chunk.
        doc_text, doc_metadata: callables giving a document's text and metadata.
    """
    lines = chunk_contexts(docs, starts, doc_text, doc_metadata)
    return [f"{line}\n{t}" if line else t for t, line in zip(texts, lines, strict=True)]
