"""Writing the next generation of an index: segments, derived data, then the manifest.

The order is what makes a write atomic: new segment directories and everything derived
from them (BM25 postings, approximate-search graphs, the MoGG graph, rows in an external
store) are written first; only then is the manifest swapped in (tmp + fsync + rename), and
files no manifest references are collected last. A crash at any point leaves the previous
generation readable.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mograg.graph.build import GraphSettings, build_and_save
from mograg.index.segments import Progress
from mograg.store.factory import open_backend
from mograg.store.manifest import Manifest
from mograg.store.snapshot import Snapshot
from mograg.store.storage import (
    MANIFEST,
    SegmentData,
    atomic_write_json,
    collect_garbage,
    concat_segments,
    new_name,
)

__all__ = ["MAX_SEGMENTS", "write_generation"]

MAX_SEGMENTS = 8


def write_generation(
    root: Path, old: Manifest, snap: Snapshot, segment: SegmentData | None, remove: set[str],
    progress: Progress,
) -> tuple[Manifest, Snapshot]:
    """Commit ``segment`` (if any) and drop the documents in ``remove`` from the generation
    ``old`` (open as ``snap``); rewrite touched segments, merge when there are more than
    :data:`MAX_SEGMENTS`, rebuild derived data and swap the manifest. Returns the new
    manifest and a snapshot of it without derived data (its segment readers are reusable)."""
    names: list[str] = []
    rewritten: list[SegmentData] = []
    for seg, name in zip(snap.segments, old["segments"], strict=True):
        keep = np.array([d not in remove for d in seg.doc_ids], dtype=bool)
        if keep.all():
            names.append(name)
        elif keep.any():
            rewritten.append(seg.keep(keep))
    if segment is not None:
        rewritten.append(segment)
    if len(names) + len(rewritten) > MAX_SEGMENTS:
        # merge into one segment (vectors are copied, never recomputed) -- except an
        # unchanged segment holding at least half of the corpus, which stays as it is,
        # so a stream of small additions keeps merging small segments only
        kept = [(s, n) for s, n in zip(snap.segments, old["segments"],
                                       strict=True) if n in names]
        sizes = {n: len(s.levels[0]) for s, n in kept}
        total = sum(sizes.values()) + sum(len(d.levels[0]) for d in rewritten)
        big = max(sizes, key=lambda n: sizes[n]) if sizes else None
        names = [big] if big is not None and 2 * sizes[big] >= total else []
        loaded = [s.load() for s, n in kept if n not in names]
        rewritten = [concat_segments(loaded + rewritten)]
    for data in rewritten:
        if data.n_docs == 0:
            continue
        name = new_name("seg")
        data.write(root / "segments" / name)
        names.append(name)
    manifest = old.copy()
    manifest["segments"] = names
    manifest["generation"] = int(manifest["generation"]) + 1
    manifest["updated"] = time.time()
    next_snap = Snapshot(root, {**manifest, "derived": {}},  # before derived data
                         readers=dict(zip(old["segments"], snap.segments, strict=True)),
                         eager=False)
    backend = open_backend(old, snap)
    # the store makes the next generation searchable first (BM25 postings, or rows
    # sent to Milvus and flushed); only then is the manifest swapped in
    derived = backend.before_commit(next_snap, progress)
    derived.update(_derive_graph(root, next_snap, manifest, progress))
    manifest["derived"] = derived
    atomic_write_json(root / MANIFEST, manifest)
    backend.after_commit(next_snap)  # e.g. delete Milvus rows of chunks that left
    collect_garbage(root, manifest)
    return manifest, next_snap


def _derive_graph(
    root: Path, snap: Snapshot, manifest: Manifest, progress: Progress
) -> dict[str, str]:
    """Build corpus-wide structures for the next generation: the MoGG graph if enabled."""
    if not manifest.get("graph"):
        return {}
    settings = GraphSettings.from_dict(manifest["graph"])
    name, stats = build_and_save(root, snap, settings, progress)
    manifest["graph_stats"] = stats
    return {"graph": name}
