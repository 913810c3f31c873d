"""The best of many scores: a deterministic top-n, and BM25's top-n that skips work.

``top_n`` breaks every tie by lower position, so any shortcut that finds the same set is
exact. :func:`prune` is MaxScore over whole query terms for :class:`~mograg.store.lexical.Bm25`:
the sums it keeps are made of the same float64 additions in the same order (term by term,
in query order) as summing every posting, so scores and ranks are the same bits.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Term(NamedTuple):
    """One query term in one level: the chunks it occurs in (ascending positions), its
    BM25 share in each (float64), and the largest share."""

    rows: np.ndarray
    shares: np.ndarray
    bound: float

    @property
    def nbytes(self) -> int:
        """Memory held (the positions are often a view of the memory-mapped postings)."""
        return owned_bytes(self.rows) + self.shares.nbytes


def concatenate(terms: list[Term], row_type: type) -> tuple[np.ndarray, np.ndarray]:
    """All terms' positions and shares, term by term."""
    if not terms:
        return np.zeros(0, row_type), np.zeros(0, np.float64)
    return np.concatenate([t.rows for t in terms]), np.concatenate([t.shares for t in terms])


def prune(terms: list[Term], n: int, n_docs: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The chunks that can be among the ``n`` best and their exact float32 scores
    (positions ascending), or None when no term can be set aside.

    MaxScore over whole terms: the ``n``-th best score is at least ``floor``, the
    ``n``-th best among the chunks of the rarest terms (scored exactly). Terms whose
    largest shares sum (in query order, as every chunk's sum is added) to less than
    ``floor`` in float32 cannot lift a chunk to it alone: they are added only to the
    chunks of the other terms (looked up in a bitmap), not sorted and summed everywhere.
    Every chunk left out scores strictly below the ``n``-th best, so ties there are
    unaffected. Float additions are monotonic, so the bound holds bit for bit."""
    if len(terms) < 2:
        return None
    by_df = sorted(range(len(terms)), key=lambda i: len(terms[i].rows))
    seeds = terms[by_df[0]].rows  # the rarest term's chunks (more while fewer than n)
    for more in range(2, len(terms)):
        if len(seeds) >= n:
            break
        seeds = np.unique(np.concatenate([terms[i].rows for i in by_df[:more]]))
    if len(seeds) < n:
        return None
    seed_scores = score_chunks(terms, seeds)
    floor = np.partition(seed_scores, len(seed_scores) - n)[len(seed_scores) - n]
    aside: set[int] = set()
    for i in sorted(range(len(terms)), key=lambda i: terms[i].bound):
        bound = 0.0
        for k, t in enumerate(terms):
            if k in aside or k == i:
                bound += t.bound
        if not np.float32(bound) < floor:
            break
        aside.add(i)
    if not aside:
        return None
    inside = np.zeros(n_docs, bool)
    for k, t in enumerate(terms):
        if k not in aside:
            inside[t.rows] = True
    rows, shares = [], []
    for k, t in enumerate(terms):
        if k in aside:
            keep = inside[t.rows]
            rows.append(t.rows[keep])
            shares.append(t.shares[keep])
        else:
            rows.append(t.rows)
            shares.append(t.shares)
    touched, sums = sum_by_row(np.concatenate(rows), np.concatenate(shares))
    return touched, sums.astype(np.float32)


def score_chunks(terms: list[Term], chunks: np.ndarray) -> np.ndarray:
    """The float32 score of a few given chunks (looked up term by term in query order)."""
    sums = np.zeros(len(chunks))
    for t in terms:
        at = np.searchsorted(t.rows, chunks)
        np.minimum(at, len(t.rows) - 1, out=at)
        hit = t.rows[at] == chunks
        sums[hit] += t.shares[at[hit]]
    return sums.astype(np.float32)


def owned_bytes(array: np.ndarray) -> int:
    """Memory an array holds of its own (0 for a view of a memory map)."""
    return 0 if array.base is not None else array.nbytes


def sum_by_row(rows: np.ndarray, shares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``rows`` (ascending) and the sum of each one's ``shares``, added in
    the given order (a stable sort keeps it; ``bincount`` adds sequentially)."""
    if not len(rows):
        return rows, shares
    order = np.argsort(rows, kind="stable")
    rows, shares = rows[order], shares[order]
    new = np.empty(len(rows), bool)
    new[0] = True
    np.not_equal(rows[1:], rows[:-1], out=new[1:])
    return rows[new], np.bincount(np.cumsum(new) - 1, weights=shares)


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest scores, best first; ties by lower position, also at
    the ``n``-th score (of several chunks tied there, the lowest positions are kept)."""
    if n >= len(scores):
        return np.argsort(-scores, kind="stable")
    if n <= 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-scores, n - 1)[:n]
    kth = scores[part[n - 1]]  # argpartition puts the n-th largest at index n - 1
    at_kth = scores[part] == kth
    kept = int(at_kth.sum())
    if kept < int(np.count_nonzero(scores == kth)):  # argpartition chose among ties
        part = np.concatenate([part[~at_kth], np.flatnonzero(scores == kth)[:kept]])
    return part[np.lexsort((part, -scores[part]))]


def top_positive(scores: np.ndarray, n: int) -> np.ndarray:
    """``top_n`` of non-negative scores, found among the positive ones when there are at
    least ``n`` (same result; BM25 touches a small share of a large level's chunks, so
    this partitions thousands of scores instead of a million)."""
    positive = np.flatnonzero(scores > 0)
    if len(positive) < n:
        return top_n(scores, n)
    return positive[top_n(scores[positive], n)]
