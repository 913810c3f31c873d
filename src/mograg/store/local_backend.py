"""The embedded search backend: memory-mapped vectors and BM25 postings in the index."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mograg.store.ann import AnnSettings, cut_origin, write_level
from mograg.store.backend import (
    ALL_BM25_SCORES,
    DENSE_LEVELS,
    LevelScores,
    Progress,
    Scores,
)
from mograg.store.lexical import is_current, mark_current, reuse_or_build
from mograg.store.lexical_top import top_n, top_positive
from mograg.store.manifest import Manifest
from mograg.store.storage import fsync_tree, new_name

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot
    from mograg.store.storage import SegmentData
    from mograg.types import Mode, Query


_NONE = np.zeros(0, np.int64)
_NO_SCORES = np.zeros(0, np.float32)


def _no_scores(ids: np.ndarray) -> np.ndarray:
    return np.zeros(len(ids), np.float32)


def _exact_dense(snap: Snapshot, j: int, qvec: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.asarray(snap.chunk_vectors(j, ids) @ qvec, np.float32)


class LocalBackend:
    """The embedded store: memory-mapped vectors (searched exactly, or through HNSW graphs
    past ``ANN_MIN_ROWS`` chunks per segment level) and BM25 postings."""

    name = "local"
    capabilities = frozenset({ALL_BM25_SCORES, DENSE_LEVELS})

    def __init__(self, manifest: Manifest, snapshot: Snapshot | None) -> None:
        self.manifest = manifest
        self.snapshot = snapshot

    def score_level(
        self, j: int, query: Query, mode: Mode, n: int, dense: np.ndarray | None = None,
    ) -> LevelScores:
        """The dense and/or BM25 top-``n``. Dense: every chunk scored exactly, or, on a
        level with approximate-search graphs, the graphs' candidates scored exactly.
        ``dense``: level ``j``'s similarities when the caller has them
        (:meth:`~mograg.store.snapshot.Snapshot.similarity_levels`)."""
        snap = self._snap()
        approximate = mode != "bm25" and snap.uses_ann(j)
        if mode == "bm25" or approximate:
            dense = None
        elif dense is None:
            dense = snap.dense_scores(j, query.vector)
        lexical = snap.lexical[j].scores(query.terms) \
            if mode != "dense" and query.docs is not None else None
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
        if approximate:  # graphs give the top-n; every score handed out is exact
            d_ids, d_scores = snap.dense_top(j, query.vector, n)
            dense_of = partial(_exact_dense, snap, j, query.vector)
        if dense is not None:
            d_ids = top_n(dense, n)
            d_scores = dense[d_ids]
            dense_of = dense.__getitem__
        if lexical is not None:
            b_ids = top_positive(lexical, n)
            b_scores = lexical[b_ids]
            bm25_of = lexical.__getitem__
        elif mode != "dense":
            b_ids, b_scores, bm25_of = snap.lexical[j].top(query.terms, n)
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
        cuts = self._cuts(new)
        for j in range(n_levels):
            progress("bm25", j, n_levels)
            for k, name in enumerate(names):
                cut = cuts.get(name)
                reuse_or_build(target, previous, name, j,
                               partial(new.segment_indexed_texts, k, j),
                               (cut[0], cut[1][j]) if cut else None)
        progress("bm25", n_levels, n_levels)
        mark_current(target)
        derived = {"lexical": target.name}
        if new.manifest.get("ann"):
            derived["ann"] = self._write_ann(new, cuts, progress)
        return derived

    def _cuts(self, new: Snapshot) -> dict[str, tuple[str, list[np.ndarray]]]:
        """New segments that are a current segment minus deleted documents: name ->
        (that segment's name, per level the rows kept), see :func:`cut_origin`."""
        old_names = list(self.manifest.get("segments", []))
        old = list(zip(old_names, self.snapshot.segments, strict=True)) if self.snapshot else []
        cuts = {}
        for name, seg in zip(new.manifest["segments"], new.segments, strict=True):
            if name not in old_names and (cut := cut_origin(seg, old)) is not None:
                cuts[name] = cut
        return cuts

    def _write_ann(self, new: Snapshot, cuts: dict[str, tuple[str, list[np.ndarray]]],
                   progress: Progress) -> str:
        """Approximate-search graphs of the next generation: unchanged segments' are
        hard-linked from the current generation, a segment cut from one by a delete
        inherits its graph with tombstones, only new or merged segments are built."""
        settings = AnnSettings.from_dict(new.manifest["ann"])
        root = new.root
        target = root / "ann" / new_name("ann")
        target.mkdir(parents=True)
        current = self.manifest.get("derived", {}).get("ann")
        previous: Path | None = root / "ann" / current if current else None
        n_levels = len(new.sizes)
        names = new.manifest["segments"]
        for j in range(n_levels):
            progress("ann", j, n_levels)
            for name, seg in zip(names, new.segments, strict=True):
                cut = cuts.get(name)
                origin = (cut[0], cut[1][j]) if cut else None
                write_level(target, previous, name, j, seg.vectors[j], settings, origin)
        progress("ann", n_levels, n_levels)
        fsync_tree(target)
        return target.name

    def after_commit(self, new: Snapshot) -> None:
        """Nothing to drop: garbage collection removes superseded files."""
        del new

    def _snap(self) -> Snapshot:
        if self.snapshot is None:
            raise ValueError("this backend was opened without a snapshot")
        return self.snapshot
