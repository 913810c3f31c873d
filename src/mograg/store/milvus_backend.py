"""The Milvus search backend: level search in Milvus, commit hooks that keep it in step.

Hits are chunk keys (:mod:`mograg.store.content_keys`), mapped back to the snapshot's chunk
positions; keys the committed snapshot does not name (rows of a write that crashed before
its manifest swap, or staged by a running ingestion) are ignored. Dense hits are re-scored
exactly from the local vectors. Difference from the embedded store: the BM25 score of a
candidate outside the BM25 top-n is unknown (0).

A ``--where`` filter (``Query.docs``, evaluated locally by :mod:`mograg.retrieval.filters`)
goes to Milvus as a ``doc_id`` expression (:class:`mograg.store.milvus.DocFilter`), so
each level's top-n is the best of the matching documents and a filtered search still fills
its budget; hits are checked against the mask again locally.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mograg.embed.base import calibrate_cosine
from mograg.store.backend import STAGES_WRITES, LevelScores, Progress
from mograg.store.content_keys import key_map, segment_data_keys, segment_keys
from mograg.store.lexical import tokenize
from mograg.store.manifest import Manifest
from mograg.store.milvus import DocFilter, MilvusStore, store_of

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot
    from mograg.store.storage import SegmentData
    from mograg.types import Mode, Query

OVERFETCH = 16  # extra hits asked of Milvus to make up for uncommitted (unknown) keys


class MilvusLevelSearch:
    """Search one level of a committed snapshot in Milvus; results are chunk positions."""

    def __init__(self, snap: Snapshot, j: int) -> None:
        self.snap = snap
        self.j = j
        self.store = store_of(snap.manifest)
        self.keys = key_map(snap)

    def _known(
        self, keys: np.ndarray, scores: np.ndarray, n: int, docs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        pos = self.keys.positions(self.j, keys)
        ok = pos >= 0
        if docs is not None:  # a --where filter: Milvus applied it; keep only allowed docs
            ok[ok] = docs[self.snap.atoms["doc"][self.snap.levels[self.j]["first_atom"][pos[ok]]]]
        return pos[ok][:n], scores[ok][:n]

    def _filter(self, docs: np.ndarray | None) -> DocFilter | None:
        return None if docs is None else DocFilter.of(self.snap.doc_ids, docs)

    def top(
        self, qvec: np.ndarray, n: int, docs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``n`` chunks by cosine, re-scored exactly from the local vectors (of the
        documents allowed by the mask ``docs``, if given)."""
        keys, _ = self.store.dense_top(self.j, qvec, n + OVERFETCH, self._filter(docs))
        ids, _ = self._known(keys, np.zeros(len(keys), np.float32), n + OVERFETCH, docs)
        if len(ids) == 0:
            return ids, np.zeros(0, np.float32)
        scores = self.snap.chunk_vectors(self.j, ids) @ np.asarray(qvec, np.float32)
        scores = calibrate_cosine(scores, self.snap.cosine_floor)  # as Snapshot.dense_scores
        order = np.lexsort((ids, -scores))[:n]
        return ids[order], scores[order].astype(np.float32)

    def bm25_top(
        self, terms: Sequence[str] | str, n: int, docs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``n`` chunks by BM25 for query terms (already tokenized, or raw text), of
        the documents allowed by the mask ``docs``, if given."""
        if isinstance(terms, str):
            terms = tokenize([terms])[0]
        keys, scores = self.store.bm25_top(
            self.j, " ".join(terms), n + OVERFETCH, self._filter(docs))
        return self._known(keys, scores, n, docs)


_SEARCHES: weakref.WeakKeyDictionary[Snapshot, list[MilvusLevelSearch]] = (
    weakref.WeakKeyDictionary()
)


def level_search(snap: Snapshot, j: int) -> MilvusLevelSearch:
    """The (cached) searcher of level ``j`` of a snapshot."""
    lst = _SEARCHES.get(snap)
    if lst is None:
        lst = [MilvusLevelSearch(snap, i) for i in range(len(snap.sizes))]
        _SEARCHES[snap] = lst
    return lst[j]


# ----------------------------------------------------------------------------- commit hooks

# keys already sent to Milvus by the streaming ingester, per (uri, prefix) and level
_STAGED: dict[tuple[str, str], dict[int, set[int]]] = {}


def _staged(manifest: Manifest) -> dict[int, set[int]]:
    cfg = manifest["store"]
    return _STAGED.setdefault((cfg["uri"], cfg["prefix"]), {})


def stage_segment(manifest: Manifest, data: SegmentData) -> int:
    """Send a not yet committed segment to Milvus (streaming ingestion).

    Safe before the commit: rows whose keys the committed snapshot does not name are
    ignored by searches; the commit then skips what was staged.
    """
    store = store_of(manifest)
    staged = _staged(manifest)
    sent = store.write_segment(data)
    _, keys = segment_data_keys(data, store.n_levels)
    for j, k in enumerate(keys):
        staged.setdefault(j, set()).update(k.tolist())
    return sent


def before_commit(old: Snapshot, new: Snapshot) -> dict[str, int]:
    """Send the chunks of segments new in ``new`` to Milvus and flush; call before the
    manifest swap (a crash after this leaves only rows the old manifest ignores)."""
    store = store_of(new.manifest)
    n_levels = store.n_levels
    old_names = {Path(s.directory).name for s in old.segments}
    new_names = {Path(s.directory).name for s in new.segments}
    gone = [s for s in old.segments if Path(s.directory).name not in new_names]
    gone_keys = [
        np.concatenate([segment_keys(s, n_levels)[1][j] for s in gone])
        if gone else np.zeros(0, np.int64) for j in range(n_levels)
    ]
    staged = _staged(new.manifest)
    sent = 0
    for seg in new.segments:
        if Path(seg.directory).name in old_names:
            continue
        skip = {
            j: np.concatenate([gone_keys[j], np.fromiter(staged.get(j, ()), np.int64)])
            for j in range(n_levels)
        }
        sent += store.write_segment(seg.load(), skip=skip)
    store.flush()
    return {"sent": sent}


def after_commit(old: Snapshot, new: Snapshot) -> dict[str, int]:
    """Delete rows of chunks that ``old`` had and ``new`` does not; call after the swap."""
    store = store_of(new.manifest)
    n_levels = store.n_levels
    new_names = {Path(s.directory).name for s in new.segments}
    gone = [s for s in old.segments if Path(s.directory).name not in new_names]
    deleted = 0
    if gone:
        fresh = [s for s in new.segments if Path(s.directory).name not in
                 {Path(o.directory).name for o in old.segments}]
        for j in range(n_levels):
            g = np.concatenate([segment_keys(s, n_levels)[1][j] for s in gone])
            keep = (np.concatenate([segment_keys(s, n_levels)[1][j] for s in fresh])
                    if fresh else np.zeros(0, np.int64))
            drop = np.setdiff1d(g, keep)
            if len(drop):
                store.delete_keys(j, drop)
                deleted += len(drop)
    staged = _staged(new.manifest)
    if any(staged.values()):
        for seg in new.segments:
            for j, k in enumerate(segment_keys(seg, n_levels)[1]):
                if staged.get(j):
                    staged[j].difference_update(k.tolist())
    return {"deleted": deleted}



class MilvusBackend:
    """Dense and BM25 search of one snapshot in Milvus, and the commit hooks."""

    name = "milvus"
    capabilities = frozenset({STAGES_WRITES})

    def __init__(self, manifest: Manifest, snapshot: Snapshot | None) -> None:
        self.manifest = manifest
        self.snapshot = snapshot

    @property
    def store(self) -> MilvusStore:
        """The Milvus side of the index (cached per collection prefix)."""
        return store_of(self.manifest)

    def score_level(
        self, j: int, query: Query, mode: Mode, n: int, dense: np.ndarray | None = None,
    ) -> LevelScores:
        """Dense and/or BM25 top-``n`` from Milvus, as chunk positions of the snapshot
        (``dense`` is ignored: Milvus scores its own vectors)."""
        del dense
        if self.snapshot is None:
            raise ValueError("this backend was opened without a snapshot")
        snap = self.snapshot
        search = level_search(snap, j)
        qv = np.asarray(query.vector, np.float32)
        none, no_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        docs = query.docs
        some = docs is None or bool(docs.any())  # else no document matches the filter
        d_ids, d_scores = (search.top(qv, n, docs) if mode != "bm25" and some
                           else (none, no_scores))
        b_ids, b_scores = (search.bm25_top(query.terms, n, docs) if mode != "dense" and some
                           else (none, no_scores))
        bm = {i: s for i, s in zip(b_ids.tolist(), b_scores.tolist(), strict=True) if s > 0}

        def dense_of(ids: np.ndarray) -> np.ndarray:
            return snap.chunk_vectors(j, ids) @ qv if len(ids) else np.zeros(0, np.float32)

        def bm25_of(ids: np.ndarray) -> np.ndarray:
            return np.array([bm.get(int(i), 0.0) for i in ids.tolist()], np.float32)

        return LevelScores(d_ids, d_scores, b_ids, b_scores, dense_of, bm25_of)

    def create(self) -> None:
        """Create the per-level collections."""
        self.store.create()

    def stage(self, data: SegmentData) -> int:
        """Send a segment ahead of its commit (streaming ingestion)."""
        return stage_segment(self.manifest, data)

    def before_commit(self, new: Snapshot, progress: Progress) -> dict[str, str]:
        """Send the chunks of new segments, flush; nothing is written locally."""
        if self.snapshot is None:
            raise ValueError("this backend was opened without a snapshot")
        progress("store", 0, 1)
        before_commit(self.snapshot, new)
        progress("store", 1, 1)
        return {}

    def after_commit(self, new: Snapshot) -> None:
        """Delete the rows of chunks that left."""
        if self.snapshot is not None:
            after_commit(self.snapshot, new)
