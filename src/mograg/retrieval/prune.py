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
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["DUPLICATE_SHARE", "FLOOR", "clean_picks", "shingles"]

FLOOR = 0.5  # share of the best candidate's dense similarity (per level) a candidate needs
DUPLICATE_SHARE = 0.8  # share of the smaller span's word 4-grams found in the other span
SHINGLE = 4
_WORD = re.compile(r"\w+")


def shingles(text: str) -> set[tuple[str, ...]]:
    """Word 4-grams of ``text`` (lowercased); short texts give their whole word tuple."""
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def _near_duplicate(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> bool:
    small = min(len(a), len(b))
    return small > 0 and len(a & b) >= DUPLICATE_SHARE * small


def _similarities(snap: Any, qvec: np.ndarray, picks: Sequence[Any]) -> np.ndarray:
    sims = np.zeros(len(picks), np.float32)
    by_level: dict[int, list[int]] = {}
    for i, p in enumerate(picks):
        by_level.setdefault(p.level, []).append(i)
    for level, rows in by_level.items():
        ids = np.array([picks[i].chunk for i in rows], np.int64)
        sims[rows] = snap.chunk_vectors(level, ids) @ qvec
    return sims


def clean_picks(
    snap: Any, query: Any, picks: Sequence[Any], stats: dict[str, int] | None = None
) -> Iterator[Any]:
    """The candidates above the relevance floor that do not repeat another document's
    better candidate, in the given order (lazily: stop consuming when the budget is full).

    ``stats`` receives ``below_floor`` and ``folded`` counts (of candidates examined).
    """
    stats = stats if stats is not None else {}
    stats.setdefault("below_floor", 0)
    stats.setdefault("folded", 0)
    if not picks:
        return
    sims = _similarities(snap, np.asarray(query.vector, np.float32), picks)
    best: dict[int, float] = {}
    for p, s in zip(picks, sims.tolist(), strict=True):
        best[p.level] = max(best.get(p.level, s), s)
    kept: list[tuple[int, set[tuple[str, ...]]]] = []  # (doc, shingles) of yielded picks
    for p, s in zip(picks, sims.tolist(), strict=True):
        top = best[p.level]
        if top > 0 and s < FLOOR * top and not p.linked:
            stats["below_floor"] += 1
            continue
        doc, start, end = snap.chunk_span(p.level, p.chunk)
        sh = shingles(snap.text(doc)[start:end])
        if any(d != doc and _near_duplicate(sh, other) for d, other in kept):
            stats["folded"] += 1
            continue
        kept.append((doc, sh))
        yield p
