"""Search backends: where a level's dense and BM25 top-n come from, and the write hooks.

A :class:`SearchBackend` serves one committed snapshot. ``score_level`` returns the raw
material of a ranking (dense top-n, BM25 top-n, and lookups of either score for any
candidate); reciprocal-rank fusion of the two happens once, above every backend, in
:func:`mograg.retrieval.rank.rank_level`. Writers call the hooks around a commit:
``before_commit`` (returns the manifest's ``derived`` entries it wrote), the manifest
swap, then ``after_commit``.

Backends: :class:`~mograg.store.local_backend.LocalBackend` (the embedded store:
memory-mapped vectors and BM25 postings in the index directory) and
:class:`~mograg.store.milvus_backend.MilvusBackend` (search structures in Milvus).
:func:`mograg.store.factory.open_backend` picks one from the manifest -- the one place that
looks at ``manifest["store"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot
    from mograg.store.storage import SegmentData
    from mograg.types import Mode, Query

Progress = Callable[[str, int, int], None]
Scores = Callable[[np.ndarray], np.ndarray]

ALL_BM25_SCORES = "all_bm25_scores"
"""Capability: ``bm25_of`` knows every chunk's BM25 score (else 0 outside the BM25 top-n)."""
DENSE_LEVELS = "dense_levels"
"""Capability: ``score_level`` takes dense similarities computed for several levels at
once (:meth:`~mograg.store.snapshot.Snapshot.similarity_levels`, one pass down the level tree)."""
STAGES_WRITES = "stages_writes"
"""Capability: ``stage`` sends uncommitted segments ahead of the commit (streaming ingestion)."""


@dataclass
class LevelScores:
    """What a backend found at one level for one query; fused by ``rank_level``.

    ``dense_*``/``bm25_*``: the top-n by each score, best first (empty when the mode does
    not use it). ``dense_of``/``bm25_of``: that score for any chunk positions.
    """

    dense_ids: np.ndarray
    dense_scores: np.ndarray
    bm25_ids: np.ndarray
    bm25_scores: np.ndarray
    dense_of: Scores
    bm25_of: Scores


class SearchBackend(Protocol):
    """Dense and BM25 search over one committed snapshot, plus the commit hooks."""

    name: str
    capabilities: frozenset[str]
    snapshot: Snapshot | None

    def score_level(
        self, j: int, query: Query, mode: Mode, n: int, dense: np.ndarray | None = None,
    ) -> LevelScores:
        """Dense and/or BM25 top-``n`` of level ``j`` (chunk positions of the snapshot);
        ``dense``: the level's similarities already computed (backends with
        :data:`DENSE_LEVELS` use them, others ignore them)."""
        ...

    def create(self) -> None:
        """Create the backend's structures for a new index (before anything is written)."""
        ...

    def stage(self, data: SegmentData) -> int:
        """Send a not yet committed segment ahead of its commit; return rows sent."""
        ...

    def before_commit(self, new: Snapshot, progress: Progress) -> dict[str, str]:
        """Make ``new`` searchable before its manifest is swapped in; return the
        ``derived`` entries written (directory names under the index root)."""
        ...

    def after_commit(self, new: Snapshot) -> None:
        """Drop what only the replaced snapshot needed (after the manifest swap)."""
        ...
