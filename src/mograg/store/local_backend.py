"""The embedded search backend: memory-mapped vectors and BM25 postings in the index."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mograg.store.backend import ALL_BM25_SCORES, LevelScores, Progress, Scores
from mograg.store.lexical import is_current, mark_current, reuse_or_build
from mograg.store.manifest import Manifest
from mograg.store.storage import new_name

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot
    from mograg.store.storage import SegmentData
    from mograg.types import Mode, Query


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest scores, best first (ties by lower index)."""
    if n >= len(scores):
        order = np.argsort(-scores, kind="stable")
        return order
    part = np.argpartition(-scores, n - 1)[:n]
    return part[np.lexsort((part, -scores[part]))]


_NONE = np.zeros(0, np.int64)
_NO_SCORES = np.zeros(0, np.float32)


def _no_scores(ids: np.ndarray) -> np.ndarray:
    return np.zeros(len(ids), np.float32)


class LocalBackend:
    """The embedded store: exact dense scores over memory-mapped vectors, BM25 postings."""

    name = "local"
    capabilities = frozenset({ALL_BM25_SCORES})

    def __init__(self, manifest: Manifest, snapshot: Snapshot | None) -> None:
        self.manifest = manifest
        self.snapshot = snapshot

    def score_level(self, j: int, query: Query, mode: Mode, n: int) -> LevelScores:
        """Every chunk's dense and/or BM25 score; the top-``n`` of each."""
        snap = self._snap()
        dense = snap.dense_scores(j, query.vector) if mode != "bm25" else None
        lexical = snap.lexical[j].scores(query.terms) if mode != "dense" else None
        if query.docs is not None:  # a --where filter: only chunks of allowed documents
            allowed = query.docs[snap.atoms["doc"][snap.levels[j]["first_atom"]]]
            n = min(n, int(allowed.sum()))
            if dense is not None:
                dense = np.where(allowed, dense, -np.inf).astype(np.float32)
            if lexical is not None:
                lexical = np.where(allowed, lexical, 0.0).astype(np.float32)
        d_ids = b_ids = _NONE
        d_scores = b_scores = _NO_SCORES
        dense_of: Scores = _no_scores
        bm25_of: Scores = _no_scores
        if dense is not None:
            d_ids = top_n(dense, n)
            d_scores = dense[d_ids]
            dense_of = dense.__getitem__
        if lexical is not None:
            b_ids = top_n(lexical, n)
            b_scores = lexical[b_ids]
            bm25_of = lexical.__getitem__
        return LevelScores(d_ids, d_scores, b_ids, b_scores, dense_of, bm25_of)

    def create(self) -> None:
        """Nothing to create: the index directory is the store."""

    def stage(self, data: SegmentData) -> int:
        """Nothing to stage: BM25 postings are written at commit."""
        del data
        return 0

    def before_commit(self, new: Snapshot, progress: Progress) -> dict[str, str]:
        """BM25 postings of the next generation: unchanged segments' are hard-linked from
        the current generation, only new or rewritten segments are tokenized."""
        root = new.root
        target = root / "lexical" / new_name("bm25")
        target.mkdir(parents=True)
        current = self.manifest.get("derived", {}).get("lexical")
        previous: Path | None = root / "lexical" / current if current else None
        if previous is not None and not is_current(previous):
            previous = None  # an older whole-corpus BM25: count every segment once
        n_levels = len(new.sizes)
        names = new.manifest["segments"]
        for j in range(n_levels):
            progress("bm25", j, n_levels)
            lo = 0
            for name, seg in zip(names, new.segments, strict=True):
                hi = lo + len(seg.levels[j])
                reuse_or_build(target, previous, name, j, partial(new.indexed_texts, j, lo, hi))
                lo = hi
        progress("bm25", n_levels, n_levels)
        mark_current(target)
        return {"lexical": target.name}

    def after_commit(self, new: Snapshot) -> None:
        """Nothing to drop: garbage collection removes superseded files."""
        del new

    def _snap(self) -> Snapshot:
        if self.snapshot is None:
            raise ValueError("this backend was opened without a snapshot")
        return self.snapshot
