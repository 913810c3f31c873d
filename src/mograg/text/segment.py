"""Deterministic, offline sentence splitting with character offsets.

Sentences come from nupunkt (Punkt, pure Python, its English model packaged), plus
extra boundaries at blank lines (paragraphs), before Markdown list items / headings /
table rows, and after Markdown headings.
Every span is trimmed of whitespace; together the spans cover every
non-whitespace character of the text. Sentences longer than ``max_tokens``
tokens (see :mod:`mograg.text.tokens`) are cut into pieces that fit.

Everything is linear in the text's length: nupunkt and the tokenizer see bounded
windows (:data:`WINDOW_CHARS`), so a 50 MB line costs time and memory in proportion.
"""

from __future__ import annotations

import re
from itertools import pairwise

import nupunkt

from mograg.text.tokens import MAX_TOKEN_CHARS, count_tokens, split_long_tokens, wordpiece

__all__ = ["SPLITTER", "WINDOW_CHARS", "split_sentences", "split_with_counts"]

SPLITTER = f"nupunkt-{nupunkt.__version__}"
"""What decides sentence boundaries (hence chunks): part of cached eval indexes' key."""

WINDOW_CHARS = 1 << 16
"""Longest piece of text given to nupunkt or the tokenizer in one call (a sentence
longer than this is cut at a window edge before being cut to the token cap)."""

# Blank line(s): a paragraph boundary.
_PARA_RE = re.compile(r"\n\s*\n")
# A newline followed by a line that starts a Markdown heading, list item or table row.
_BLOCK_START_RE = re.compile(
    r"\n(?=[ \t]*(?:#{1,6}(?:[ \t]|$)|[-*+][ \t]|\d{1,9}[.)][ \t]|\|))", re.M
)
# A Markdown heading line (cut after it as well).
_HEADING_RE = re.compile(r"^[ \t]*#{1,6}[ \t][^\n]*", re.M)


def _punkt_ends(text: str) -> list[int]:
    """Character end offsets of nupunkt's sentences (Punkt with its packaged English
    model: pure Python, no network, deterministic for a given nupunkt version)."""
    return [e for _, e in nupunkt.sent_spans(text)]


def _windows(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into pieces of at most ``size`` characters, each ending at a
    blank line, else a newline, else a space in its second half if there is one."""
    out: list[tuple[int, int]] = []
    a = start
    while end - a > size:
        b = a + size
        lo = a + size // 2
        cut = -1
        for sep in ("\n\n", "\n", " "):
            k = text.rfind(sep, lo, b)
            if k >= 0:
                cut = k + len(sep)
                break
        if cut < 0:
            cut = b
        out.append((a, cut))
        a = cut
    out.append((a, end))
    return out


def _sentence_ends(text: str) -> list[int]:
    """nupunkt's sentence ends over the whole text, window by window."""
    if len(text) <= WINDOW_CHARS:
        return _punkt_ends(text)
    ends: list[int] = []
    for a, b in _windows(text, 0, len(text), WINDOW_CHARS):
        ends.extend(a + e for e in _punkt_ends(text[a:b]))
        ends.append(b)
    return ends


def _cut_points(text: str) -> list[int]:
    """Sorted unique positions where sentences may begin (always includes 0 and len)."""
    cuts: set[int] = {0, len(text)}
    for m in _PARA_RE.finditer(text):
        cuts.add(m.start())
    for m in _BLOCK_START_RE.finditer(text):
        cuts.add(m.start())
    for m in _HEADING_RE.finditer(text):
        cuts.add(m.end())
    cuts.update(_sentence_ends(text))
    return sorted(c for c in cuts if 0 <= c <= len(text))


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``(start, end)`` shrunk to exclude surrounding whitespace; None if nothing is left."""
    seg = text[start:end]
    left = seg.lstrip()
    if not left:
        return None
    s = start + (len(seg) - len(left))
    return s, s + len(left.rstrip())


_NONSPACE_RE = re.compile(r"\S+")


def _covering(
    seg: str, offs: list[tuple[int, int]], toks: list[str]
) -> tuple[list[tuple[int, int]], list[str]]:
    """Tokens plus stand-ins for non-whitespace the tokenizer dropped (combining marks,
    zero-width and control characters), so every character is inside some token."""
    out_offs: list[tuple[int, int]] = []
    out_toks: list[str] = []
    prev = 0

    def gap(a: int, b: int) -> None:
        for m in _NONSPACE_RE.finditer(seg, a, b):
            for x in range(m.start(), m.end(), MAX_TOKEN_CHARS):
                out_offs.append((x, min(x + MAX_TOKEN_CHARS, m.end())))
                out_toks.append("##")

    for (a, b), t in zip(offs, toks, strict=True):
        if a > prev:
            gap(prev, a)
        out_offs.append((a, b))
        out_toks.append(t)
        prev = max(prev, b)
    gap(prev, len(seg))
    return out_offs, out_toks


def _split_long(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut ``text[start:end]`` into pieces of at most ``max_tokens`` tokens and
    ``max_tokens * MAX_TOKEN_CHARS`` characters (by token offsets)."""
    seg = text[start:end]
    enc = wordpiece().encode(seg, add_special_tokens=False)
    offs, toks = _covering(seg, *split_long_tokens(list(enc.offsets), list(enc.tokens)))
    n = len(offs)
    max_chars = max_tokens * MAX_TOKEN_CHARS
    # WordPieces before each position (stand-ins "##" only count through their characters)
    real = [0]
    for t in toks:
        real.append(real[-1] + (t != "##"))
    pieces: list[tuple[int, int]] = []
    piece_start = 0  # char offset within seg
    i = 0  # first token of the current piece

    def fits(j: int) -> bool:  # tokens i..j-1 as one piece
        return real[j] - real[i] <= max_tokens and offs[j - 1][1] - piece_start <= max_chars

    # Pieces fill the cap (40 tokens at a cap of 32 become 32 + 8): measured on chroma-dev,
    # balanced halves (20 + 20) lowered recall at 64/128-token levels by 3-6 points.
    while i < n and not fits(n):
        limit = i + 1  # the token that would start the next piece: as late as fits
        while limit < n - 1 and fits(limit + 1):
            limit += 1
        cut_tok = -1
        # Prefer a word start (whitespace before the token) within the cap ...
        for j in range(limit, i, -1):
            if any(c.isspace() for c in seg[offs[j - 1][1] : offs[j][0]]):
                cut_tok = j
                break
        # ... else a boundary that is not inside a word (retokenises the same) ...
        if cut_tok < 0:
            for j in range(limit, i, -1):
                if not toks[j].startswith("##") and offs[j][0] >= offs[j - 1][1]:
                    cut_tok = j
                    break
        # ... else any token boundary.
        if cut_tok < 0:
            cut_tok = limit
            while cut_tok > i + 1 and offs[cut_tok][0] < offs[cut_tok - 1][1]:
                cut_tok -= 1  # tokens sharing a character cannot be separated
        cut_char = offs[cut_tok][0]
        if cut_char <= piece_start:
            # the tokens up to the cap share characters (one character, several
            # WordPieces): this piece has to run to the next token that starts later
            later = next((j for j in range(cut_tok, n) if offs[j][0] > piece_start), None)
            if later is None:
                break
            cut_tok = later
            cut_char = offs[cut_tok][0]
        pieces.append((start + piece_start, start + cut_char))
        piece_start = cut_char
        i = cut_tok
    pieces.append((start + piece_start, end))
    out = []
    for a, b in pieces:
        span = _trimmed(text, a, b)
        if span is not None:
            out.append(span)
    return out


def split_with_counts(text: str, max_tokens: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Sentence spans of ``text`` and their WordPiece counts.

    Args:
        text: The document text.
        max_tokens: Hard cap on WordPieces per span (>= 1); longer sentences are cut.

    Returns:
        ``(spans, counts)``: ordered, non-overlapping character ``(start, end)`` spans
        trimmed of whitespace that cover every non-whitespace character, and the
        WordPiece count of each span (``0 <= count <= max_tokens``, except a span no
        token boundary can cut, such as one character that is several WordPieces).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    cuts = _cut_points(text)
    spans: list[tuple[int, int]] = []
    for a0, b0 in pairwise(cuts):
        # a sentence longer than a window is cut anyway: bound what the tokenizer sees
        for a, b in _windows(text, a0, b0, WINDOW_CHARS):
            t = _trimmed(text, a, b)
            if t is not None:
                spans.append(t)
    counts = count_tokens([text[s:e] for s, e in spans])
    # Cut over-long spans; re-count the pieces (cuts inside a word may retokenise
    # differently) and repeat until everything fits.
    # A span no token boundary can cut (one character that is several WordPieces, e.g. a
    # Hangul syllable decomposed into jamo) is kept whole with its true count.
    atomic: set[tuple[int, int]] = set()
    while any(c > max_tokens and sp not in atomic for sp, c in zip(spans, counts, strict=True)):
        new_spans: list[tuple[int, int]] = []
        new_counts: list[int] = []
        todo: list[int] = []
        for span, c in zip(spans, counts, strict=True):
            if c <= max_tokens or span in atomic:
                new_spans.append(span)
                new_counts.append(c)
                continue
            pieces = _split_long(text, span[0], span[1], max_tokens)
            if len(pieces) == 1 and pieces[0] == span:
                atomic.add(span)
                new_spans.append(span)
                new_counts.append(c)
                continue
            for p in pieces:
                todo.append(len(new_spans))
                new_spans.append(p)
                new_counts.append(0)
        recount = count_tokens([text[new_spans[k][0] : new_spans[k][1]] for k in todo])
        for k, c in zip(todo, recount, strict=True):
            new_counts[k] = c
        spans, counts = new_spans, new_counts
    return spans, counts


def split_sentences(text: str, max_tokens: int) -> list[tuple[int, int]]:
    """Character ``(start, end)`` spans of the sentences of ``text``, in order.

    Args:
        text: The document text.
        max_tokens: Hard cap on WordPieces per span; longer sentences are cut.

    Returns:
        Ordered, non-overlapping spans trimmed of whitespace, covering every
        non-whitespace character of ``text``.
    """
    return split_with_counts(text, max_tokens)[0]
