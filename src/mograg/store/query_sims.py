"""One query's dense similarities to chunks, looked up instead of read again.

A routed search ranks every level in one pass and so has the query's similarity to every
chunk of each exactly searched level (:meth:`~mograg.store.snapshot.Snapshot.similarity_levels`).
Span features, the graph walk, the relevance floor and the splitting of a chunk too long
for the budget then ask for the similarities of a few hundred chunks: gathering their
vectors from the memory map again costs ~1 us a chunk (a cache miss per row), looking
them up costs nothing. Levels without such an array (searched approximately, or a search
of one level) read the vectors as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mograg.types import LevelRanking

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot


class QuerySims:
    """Similarities (cosine, not calibrated) of ``qvec`` to chunks of ``snap``'s levels.

    ``levels``: level position -> the similarity of every chunk of that level, when
    computed already (a level may be missing).
    """

    def __init__(self, snap: Snapshot, qvec: np.ndarray,
                 levels: Mapping[int, np.ndarray] | None = None) -> None:
        self.snap = snap
        self.qvec = np.asarray(qvec, np.float32)
        self.levels = dict(levels or {})

    def knows(self, j: int) -> bool:
        """True when level ``j``'s similarities are looked up, not computed."""
        return j in self.levels

    def of(self, j: int, ids: np.ndarray, rowwise: bool = False) -> np.ndarray:
        """Similarities of chunks ``ids`` of level ``j`` (float32). Computed (not known):
        by one matrix-vector product, or with ``rowwise`` each row's product alone (so a
        chunk's value does not depend on which other chunks are asked with it)."""
        full = self.levels.get(j)
        if full is not None:
            return full[ids]
        if not len(ids):
            return np.zeros(0, np.float32)
        vecs = self.snap.chunk_vectors(j, ids)
        return np.einsum("ij,j->i", vecs, self.qvec) if rowwise else vecs @ self.qvec


def query_sims(
    snap: Snapshot, qvec: np.ndarray, rankings: Sequence[LevelRanking] = ()
) -> QuerySims:
    """The :class:`QuerySims` of a search, with the whole-level similarities its rankings
    carry (:attr:`~mograg.types.LevelRanking.similarities`)."""
    return QuerySims(snap, qvec, {r.level: r.similarities for r in rankings
                                  if r.similarities is not None})
