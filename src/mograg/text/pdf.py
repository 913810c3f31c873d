"""PDF text a reader recognises: pypdfium2 extraction, running headers/footers removed.

Chosen by ``bench/pdf_extract.py`` on the 30 real PDFs in ``../shared/data``: pypdfium2
(BSD/Apache) loads all of them in 0.7 s, maps ligatures ("fl" in "Snowflake") to
letters and keeps table rows as lines; pypdf (limits raised) takes 8x as long and
pdfplumber 45x, and both turn those ligatures into NUL characters.

The document text is built from the kept lines of every page, so any span of it is
an exact slice (no offsets to translate): page furniture is left out (lines that repeat
at the top or bottom of at least :data:`MIN_REPEATS` pages and half of them, digits
normalised so "Page 3 of 20" repeats; page numbers; lines carrying the printed page
number; a chapter's running header on consecutive pages: :func:`remove_repeated_lines`).
A speaker's name that opens a few pages of a transcript is not furniture but a label
(below). A hyphen that ended a printed line (pdfium's ``\x02``) is a hyphen again.
``page_starts`` records where each page begins, so any character range can cite its page
(:func:`page_of`).

A short line that repeats on :data:`MIN_REPEATS` pages inside the body (a transcript's
speaker "Operator", a form's field label) is a *structural label*, not content
(:func:`structural_labels`): it leaves the text (a paragraph break stays in its place)
and is recorded with the offset of the text it introduces (``PdfText.labels``), which
:mod:`mograg.text.context` puts in the section path of that text. A PDF without such
lines gives the same text as without this step.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from itertools import groupby

__all__ = [
    "MIN_REPEATS",
    "PdfError",
    "PdfText",
    "page_of",
    "pages_text",
    "pdf_text",
    "remove_repeated_lines",
    "structural_labels",
]

MIN_REPEATS = 3  # a line at the edge of this many pages is a running header/footer ...
RUNNING_SHARE = 0.5  # ... and of at least this share of the pages: a speaker's name that
# happens to open three pages of a 20-page transcript is text (measured: 92 speaker labels of
# the 10 earnings calls sat at page edges, on up to 5 pages each; no running header there)
EDGE_LINES = 3  # how many lines at the top and bottom of a page can be header/footer
_DIGITS = re.compile(r"\d+")
_WS = re.compile(r"\s+")
_HEADING_END = re.compile(r"[.,;!?…]$")
_LETTER = re.compile(r"[^\W\d_]")
# a page number line, after _key: "12", "12 of 40", "- 12 -", "Page 3 of 9 <anything>"
_PAGE_NUMBER = re.compile(r"^(?:page 0+(?: (?:of|/) 0+)?(?: .*)?|0+|0+ ?(?:of|/) ?0+|- ?0+ ?-)$")
# a line that starts or ends with a number (a printed page number candidate)
_LEAD_NUMBER = re.compile(r"^(\d{1,4})(?=\s|$)")  # "15 | Apple Inc." (not "2.1 Syntax")
_TAIL_NUMBER = re.compile(r"(?:^|\s)(\d{1,4})$")
PAGE_NUMBER_SHARE = 0.25  # printed page numbers must fit this share of the pages
MAX_HEADING_CHARS = 90
MAX_HEADING_WORDS = 12


class PdfError(Exception):
    """A PDF that cannot give text; the message is one line saying why and what to do."""


@dataclass
class PdfText:
    """The text of a PDF and where things are in it."""

    text: str
    page_starts: list[int]  # offset of each page's first character in ``text``
    first_heading: str | None = None  # the first line(s) of page 1
    metadata_title: str | None = None
    removed_lines: int = 0  # running header/footer lines left out
    headings: list[tuple[int, int]] = field(default_factory=list)  # heading line spans
    # structural labels left out of ``text``: (offset of the text each introduces, label)
    labels: list[tuple[int, str]] = field(default_factory=list)


def _key(line: str) -> str:
    """A line's identity across pages: digits normalised, whitespace collapsed."""
    return _DIGITS.sub("0", _WS.sub(" ", line).strip()).lower()


def _edges(lines: list[str]) -> list[int]:
    """Indices of the non-empty lines at the top and bottom of a page."""
    idx = [i for i, ln in enumerate(lines) if ln.strip()]
    return sorted(set(idx[:EDGE_LINES] + idx[-EDGE_LINES:]))


def _page_number_offset(pages: list[list[str]]) -> int | None:
    """The difference between printed page numbers and page positions, when at least
    :data:`MIN_REPEATS` pages carry a number at an end of an edge line that fits it
    ("Chapter 4: Function reference 15" on the 18th page: offset -3), else None."""
    votes: Counter[int] = Counter()
    for p, lines in enumerate(pages, start=1):
        offsets = set()
        for i in _edges(lines):
            offsets |= {n - p for n in _end_numbers(lines[i])}
        votes.update(offsets)
    if not votes:
        return None
    offset, n = votes.most_common(1)[0]
    return offset if n >= max(MIN_REPEATS, math.ceil(PAGE_NUMBER_SHARE * len(pages))) else None


def _end_numbers(line: str) -> set[int]:
    """The numbers a line starts or ends with (candidate printed page numbers)."""
    s = line.strip()
    return {int(m.group(1)) for m in (_LEAD_NUMBER.search(s), _TAIL_NUMBER.search(s)) if m}


def _carries_page_number(line: str, number: int) -> bool:
    return number in _end_numbers(line) and len(line.split()) <= MAX_HEADING_WORDS + 2


def remove_repeated_lines(pages: list[list[str]]) -> tuple[list[list[str]], int]:
    """Drop page furniture: running headers/footers and page numbers.

    A line at the top or bottom of a page (:data:`EDGE_LINES`) is furniture when
    (digits normalised) it is there on >= :data:`MIN_REPEATS` pages and
    :data:`RUNNING_SHARE` of them, or it is only a page number ("12", "Page 3 of 9 ..."),
    or it starts or ends with the page's printed number (the document's page-number
    offset seen on >= :data:`MIN_REPEATS` pages and :data:`PAGE_NUMBER_SHARE` of them)
    and is at an edge of another page too ("Chapter 4: Function reference 15", "Apple
    Inc. | Q2 2023 Form 10-Q | 15"; not a heading "1 Introduction" on page 1), or it is
    the first or last line of
    >= :data:`MIN_REPEATS` consecutive pages (a chapter's running header). A speaker's
    name that opens a few scattered pages of a transcript is none of these and stays.

    Args:
        pages: lines of each page (empty lines allowed).

    Returns:
        ``(pages, removed)``: the kept lines of each page and how many were dropped.
    """
    edge_keys: Counter[str] = Counter()
    for lines in pages:
        edge_keys.update({_key(lines[i]) for i in _edges(lines)})
    need = max(MIN_REPEATS, math.ceil(RUNNING_SHARE * len(pages)))
    running = {k for k, n in edge_keys.items() if n >= need and k}
    if len(pages) > 1:
        running |= {k for k in edge_keys if _PAGE_NUMBER.match(k)}
    offset = _page_number_offset(pages) if len(pages) >= MIN_REPEATS else None
    in_runs = _slot_runs(pages)
    out: list[list[str]] = []
    removed = 0
    for p, lines in enumerate(pages):
        drop = {i for i in _edges(lines)
                if _key(lines[i]) in running
                or (offset is not None and edge_keys[_key(lines[i])] > 1
                    and _carries_page_number(lines[i], p + 1 + offset))}
        drop |= in_runs[p]
        removed += len(drop)
        out.append([ln for i, ln in enumerate(lines) if i not in drop])
    return out, removed


def _slot_key(line: str) -> str:
    """A line without the number it starts or ends with (a page number), whitespace
    collapsed: other digits must match ("Total 1,234" rows are not one line)."""
    s = _WS.sub(" ", line).strip()
    return _TAIL_NUMBER.sub("", _LEAD_NUMBER.sub("", s)).strip().lower()


def _slot_runs(pages: list[list[str]]) -> list[set[int]]:
    """Per page, the indices of its first/last line when the same line (but for a page
    number) is the first/last line of >= MIN_REPEATS consecutive pages."""
    found: list[set[int]] = [set() for _ in pages]
    for pick in (0, -1):
        slots: list[tuple[int, int, str]] = []  # (page, line index, key)
        for p, lines in enumerate(pages):
            idx = [i for i, ln in enumerate(lines) if ln.strip()]
            # a page without text breaks a run: its key matches no line
            key = _slot_key(lines[idx[pick]]) if idx else f"\x00{p}"
            slots.append((p, idx[pick] if idx else -1, key))
        for _, run in groupby(slots, key=lambda slot: slot[2]):
            members = list(run)
            if len(members) >= MIN_REPEATS:
                for p, i, _ in members:
                    found[p].add(i)
    return found


def _label_key(line: str) -> str:
    """A line's identity as a label: whitespace collapsed, nothing else normalised (a
    table row "Total 1,234" is not "Total 5,678")."""
    return _WS.sub(" ", line).strip()


def structural_labels(pages: list[list[str]]) -> list[set[int]]:
    """Per page, the indices of its structural labels: short lines (at most
    :data:`MAX_HEADING_WORDS` words and :data:`MAX_HEADING_CHARS` characters, with a
    letter) found, whitespace aside, on >= :data:`MIN_REPEATS` pages. Run on the pages
    left by :func:`remove_repeated_lines` (furniture is gone by then)."""
    seen: dict[str, set[int]] = {}
    for p, lines in enumerate(pages):
        for ln in lines:
            k = _label_key(ln)
            if k and len(k) <= MAX_HEADING_CHARS and len(k.split()) <= MAX_HEADING_WORDS \
                    and _LETTER.search(k):
                seen.setdefault(k, set()).add(p)
    labels = {k for k, ps in seen.items() if len(ps) >= MIN_REPEATS}
    return [{i for i, ln in enumerate(lines) if _label_key(ln) in labels} for lines in pages]


def _is_heading(line: str) -> bool:
    """A short, mostly capitalised line that does not end like a sentence or a table row."""
    s = line.strip()
    words = s.split()
    if not s or len(s) > MAX_HEADING_CHARS or len(words) > MAX_HEADING_WORDS:
        return False
    if _HEADING_END.search(s) or not _LETTER.match(s) or not s[0].isupper():
        return False
    if sum(c.isdigit() for c in s) * 4 >= len(s):
        return False
    lettered = [w for w in words if _LETTER.search(w)]
    capital = sum(1 for w in lettered if not w[0].islower())
    return 2 * capital >= len(lettered)


def _join(
    pages: list[list[str]], labels: list[set[int]] | None = None,
) -> tuple[str, list[int], list[tuple[int, int]], list[tuple[int, str]]]:
    """Text of the kept lines (pages separated by a blank line), page starts, headings,
    and the structural labels left out (``labels``: per page, line indices), each with
    the offset of the next line of text; one blank line stands where labels were."""
    parts: list[str] = []
    starts: list[int] = []
    headings: list[tuple[int, int]] = []
    marks: list[tuple[int, str]] = []
    pending: str | None = None  # the label of the text that comes next
    pos = 0
    prev_ends_sentence = True
    for p, page in enumerate(pages):
        is_label = labels[p] if labels else set()
        # (line, label text or None); a label reads as a blank line until it is placed
        rows = [("", _label_key(ln)) if i in is_label else (ln.rstrip(), None)
                for i, ln in enumerate(page)]
        while rows and not rows[0][0].strip():
            pending = rows.pop(0)[1] or pending
        tail: str | None = None  # the last label of a page goes on to the next page
        while rows and not rows[-1][0].strip():
            label = rows.pop()[1]
            tail = tail or label
        if parts and rows:
            parts.append("\n\n")
            pos += 2
        starts.append(pos)
        blank_before = True
        for i, (ln, label) in enumerate(rows):
            if label is not None:
                pending = label
                prev_ends_sentence = True
                if blank_before or not rows[i + 1][0].strip():
                    continue  # one blank line stands for labels and blank lines around
            if i:
                parts.append("\n")
                pos += 1
            s = ln.strip()
            blank_before = not s
            if s and pending is not None:
                marks.append((pos + len(ln) - len(ln.lstrip()), pending))
                pending = None
            j = i + 1  # the next line that is not a label
            while j < len(rows) and rows[j][1] is not None:
                j += 1
            nxt = rows[j][0] if j < len(rows) else ""
            # a heading starts after a finished sentence and is followed by text
            if prev_ends_sentence and nxt.strip()[:1].isupper() and _is_heading(ln):
                lead = len(ln) - len(ln.lstrip())
                headings.append((pos + lead, pos + len(ln)))
            if label is None:
                prev_ends_sentence = not s or bool(re.search(r"[.:!?\"”)]$", s)) or _is_heading(s)
            parts.append(ln)
            pos += len(ln)
        pending = tail or pending
    return "".join(parts), starts, headings, marks


def _first_heading(pages: list[list[str]]) -> str | None:
    """The first line of page 1, joined with the next if the title wraps onto it."""
    for lines in pages[:1]:
        full = [ln.strip() for ln in lines if ln.strip()]
        if not full or not _is_heading(full[0]):
            return None
        title = full[0]
        second = full[1] if len(full) > 1 else ""
        if _is_heading(second) and (2 * len(second) < len(title) or len(title + second) < 70):
            title = f"{title} {full[1]}"
        return _WS.sub(" ", title)
    return None


def _open(data: bytes):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        msg = str(e)
        if "password" in msg.lower():
            raise PdfError("encrypted (password-protected); decrypt it first") from None
        raise PdfError(
            f"not a readable PDF ({msg.strip()[:120]}); check it opens in a PDF viewer"
        ) from None


def _why(e: BaseException) -> str:
    msg = " ".join(str(e).split())[:120]
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _metadata_title(pdf: object) -> str | None:
    try:
        title = pdf.get_metadata_dict().get("Title") or ""  # type: ignore[attr-defined]
    except Exception:
        return None
    return _WS.sub(" ", title).strip() or None


def pdf_text(data: bytes) -> PdfText:
    """Text, page starts, headings and title candidates of a PDF.

    Raises:
        PdfError: encrypted, damaged, or without a text layer (scanned images).
    """
    pdf = _open(data)
    try:
        pages: list[list[str]] = []
        for i in range(len(pdf)):
            try:
                page = pdf[i]
            except Exception as e:
                raise PdfError(
                    f"page {i + 1} cannot be loaded ({_why(e)}); re-export the PDF"
                ) from None
            try:
                tp = page.get_textpage()
                raw = tp.get_text_bounded()
                tp.close()
            except Exception as e:
                raise PdfError(
                    f"page {i + 1} cannot be read ({_why(e)}); re-export the PDF"
                ) from None
            finally:
                page.close()
            raw = raw.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
            # pdfium marks a hyphen that ended a printed line as \x02 ("forward\x02looking")
            raw = raw.replace("\x02", "-")
            pages.append(raw.replace("\x0c", "\n").split("\n"))
        meta_title = _metadata_title(pdf)
    finally:
        pdf.close()
    if not any(ln.strip() for lines in pages for ln in lines):
        raise PdfError(
            f"no text layer ({len(pages)} page(s) of images, e.g. a scan); "
            "run OCR first (e.g. ocrmypdf) and index the result"
        )
    return pages_text(pages, meta_title)


def pages_text(pages: list[list[str]], metadata_title: str | None = None) -> PdfText:
    """The :class:`PdfText` of extracted pages (lines of each page): furniture removed,
    structural labels left out and recorded, headings found, pages mapped."""
    kept, removed = remove_repeated_lines(pages)
    heading = _first_heading(kept)
    text, starts, headings, labels = _join(kept, structural_labels(kept))
    return PdfText(text, starts, heading, metadata_title, removed, headings, labels)


def page_of(page_starts: list[int], offset: int) -> int:
    """1-based page number of the character at ``offset``."""
    return max(1, bisect_right(page_starts, offset))
