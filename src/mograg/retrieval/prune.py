"""No junk in the budget: the budget is a maximum, not a target.

Applied to the ranked candidate chunks before they fill the budget (so it composes with
any way of choosing and ordering candidates):

- **relevance floor**: a candidate whose dense similarity to the query is below
  ``FLOOR`` times that of the best candidate of its level is dropped, so a budget the
  relevant text does not fill stays partly empty instead of being padded. Candidates the
  graph reached (a document the question names, a chunk a retrieved one links to) are
  exempt: they are there *because* they are unlike the question (the bridge of a
  multi-hop question), and the floor cost the graph granularities 5-6 points of recall
  on both HotpotQA sets;
- **near-duplicate folding**: a candidate whose words mostly repeat a better candidate
  of *another* document (five quarters of one filing share paragraphs) is dropped and
  counted as folded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from mograg.store.query_sims import QuerySims

__all__ = ["DUPLICATE_SHARE", "FLOOR", "clean_indexed", "clean_picks", "shingles"]

FLOOR = 0.5  # share of the best candidate's dense similarity (per level) a candidate needs
DUPLICATE_SHARE = 0.8  # share of the smaller span's word 4-grams found in the other span
SHINGLE = 4
_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[tuple[str, ...]]:
    """Word 4-grams of ``text`` (lowercased); short texts give their whole word tuple."""
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE:
        return {tuple(words)} if words else set()
    return set(zip(*(words[i:] for i in range(SHINGLE)), strict=False))  # windows of 4


def _near_duplicate(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> bool:
    small = min(len(a), len(b))
    return small > 0 and len(a & b) >= DUPLICATE_SHARE * small


def _similarities(known: QuerySims, picks: Sequence[Any]) -> tuple[np.ndarray, dict[int, float]]:
    """Each pick's similarity, and the best of each level's."""
    n = len(picks)
    sims = np.zeros(n, np.float32)
    level = np.fromiter((p.level for p in picks), np.int64, n)
    chunk = np.fromiter((p.chunk for p in picks), np.int64, n)
    best: dict[int, float] = {}
    for j in np.unique(level).tolist():
        at = level == j
        sims[at] = level_sims = known.of(j, chunk[at])
        best[j] = float(level_sims.max())
    return sims, best


def clean_picks(
    snap: Any, query: Any, picks: Sequence[Any], stats: dict[str, int] | None = None
) -> Iterator[Any]:
    """The candidates above the relevance floor that do not repeat another document's
    better candidate, in the given order (lazily: stop consuming when the budget is full).

    ``stats`` receives ``below_floor`` and ``folded`` counts (of candidates examined).
    """
    return (p for _, p in clean_indexed(snap, query, picks, stats))


def clean_indexed(
    snap: Any, query: Any, picks: Sequence[Any], stats: dict[str, int] | None = None,
    useful: Callable[[Any], bool] | None = None, known: QuerySims | None = None,
) -> Iterator[tuple[int, Any]]:
    """:func:`clean_picks` with each candidate's position in ``picks``. ``useful``: a
    candidate it rejects (one that could add nothing to the context) is skipped before
    the near-duplicate check, so it is neither counted nor kept for later comparisons
    (what a context already holds decides what repeats it). ``known``: the query's
    similarities a search has already."""
    stats = stats if stats is not None else {}
    stats.setdefault("below_floor", 0)
    stats.setdefault("folded", 0)
    if not picks:
        return
    sims, best = _similarities(known or QuerySims(snap, query.vector), picks)
    kept = _Kept()
    seen: set[tuple[int, int, int]] = set()  # spans already yielded
    folded: set[tuple[int, int, int]] = set()  # spans already folded (still are: kept grows)
    for i, (p, s) in enumerate(zip(picks, sims.tolist(), strict=True)):
        top = best[p.level]
        if top > 0 and s < FLOOR * top and not p.linked:
            stats["below_floor"] += 1
            continue
        if useful is not None and not useful(p):
            continue
        span = snap.chunk_span(p.level, p.chunk)
        if span in seen:
            # the same text again (another granularity ranked it too): it repeats no
            # other document's span kept before it, and near-duplication is symmetric,
            # so none kept since repeats it either
            yield i, p
            continue
        if span in folded:
            stats["folded"] += 1
            continue
        doc, start, end = span
        sh = shingles(snap.text(doc)[start:end])
        if kept.repeats(doc, sh):
            folded.add(span)
            stats["folded"] += 1
            continue
        kept.add(doc, sh)
        seen.add(span)
        yield i, p


class _Kept:
    """Shingle sets of the yielded spans, with their union overall and per document: a
    new span is compared only with the other documents' spans holding enough of its
    shingles found in those unions (the same answer as comparing it with every one: a
    near-duplicate shares at least ``DUPLICATE_SHARE`` of the smaller set's shingles),
    found with set operations instead of a loop over shingles."""

    def __init__(self) -> None:
        self.union: set[tuple[str, ...]] = set()
        self.by_doc: dict[int, tuple[set[tuple[str, ...]], list[set[tuple[str, ...]]]]] = {}

    def repeats(self, doc: int, sh: set[tuple[str, ...]]) -> bool:
        """True if ``sh`` nearly repeats a kept span of another document."""
        shared = sh & self.union
        if not shared:
            return False
        n_shared, n = len(shared), len(sh)
        for d, (union, spans) in self.by_doc.items():
            if d == doc or union.isdisjoint(shared):
                continue
            for kept in spans:
                if (n_shared >= DUPLICATE_SHARE * min(n, len(kept))
                        and _near_duplicate(sh, kept)):
                    return True
        return False

    def add(self, doc: int, sh: set[tuple[str, ...]]) -> None:
        """Keep one more span's shingles."""
        self.union |= sh
        union, spans = self.by_doc.setdefault(doc, (set(), []))
        union |= sh
        spans.append(sh)
