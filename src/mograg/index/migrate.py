"""Migrations of an existing index, nothing re-embedded: derived data rewritten in this
version's format, approximate search or the MoGG graph added, the search structures moved
into Milvus, document context turned on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mograg.errors import MogragError
from mograg.graph.build import GraphSettings, build_and_save
from mograg.index.core import Index
from mograg.index.segments import mixed_keys, no_progress
from mograg.store.ann import AnnSettings
from mograg.store.backend import Progress
from mograg.store.milvus import store_of
from mograg.store.milvus_config import new_store_config
from mograg.store.snapshot import Snapshot
from mograg.store.storage import (
    MANIFEST,
    atomic_write_json,
    collect_garbage,
    read_manifest,
    writer_lock,
)


def upgrade(ix: Index, progress: Progress | None = None) -> None:
    """Commit the same documents again so derived data (BM25 postings, graph) is in
    this version's format; nothing is re-embedded."""
    with ix._writing():
        ix._commit(None, remove=set(), progress=progress or no_progress)


def enable_ann(ix: Index, settings: AnnSettings | None = None,
               progress: Progress | None = None) -> None:
    """Give an existing index approximate search (graphs built from the stored
    vectors, nothing re-embedded); ``settings=None`` uses the defaults."""
    with ix._writing():
        if ix.manifest.get("store"):
            raise MogragError(f"{ix.root} searches in an external store; "
                              "approximate search there is the store's own")
        ix._manifest["ann"] = (settings or AnnSettings.default()).to_dict()
        ix._commit(None, remove=set(), progress=progress or no_progress)


def enable_graph(ix: Index, settings: GraphSettings | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Add (or rebuild) the MoGG graph of an existing index from its stored vectors."""
    settings = settings or GraphSettings()
    with writer_lock(ix.root):
        manifest = read_manifest(ix.root)
        manifest["graph"] = settings.to_dict()
        ix._manifest = manifest
        ix._snapshot = None
        name, stats = build_and_save(ix.root, ix.snapshot, settings, progress)
        manifest = manifest.copy()
        manifest["derived"] = {**manifest.get("derived", {}), "graph": name}
        manifest["graph_stats"] = stats
        manifest["generation"] = int(manifest["generation"]) + 1
        atomic_write_json(ix.root / MANIFEST, manifest)
        ix._manifest = manifest
        ix._snapshot = None
        collect_garbage(ix.root, manifest)
    return stats


def attach_store(path: str | Path, store: str) -> Index:
    """Move the search structures of an existing embedded index into Milvus.

    Nothing is re-embedded: every segment's stored vectors and BM25 terms are sent to new
    collections, flushed, and only then is the manifest (with its ``store``) swapped in.
    """
    root = Path(path)
    cfg = new_store_config(store)
    if cfg is None:
        raise MogragError("attach_store needs milvus-lite:PATH or milvus://HOST:PORT")
    with writer_lock(root):
        manifest = read_manifest(root)
        if manifest.get("store"):
            raise MogragError(f"{root} already uses a store: {manifest['store']['uri']}")
        manifest = {**manifest, "store": cfg}
        st = store_of(manifest)
        st.create()
        for seg in Snapshot(root, manifest).segments:
            st.write_segment(seg.load())
        st.flush()
        manifest["generation"] = int(manifest["generation"]) + 1
        atomic_write_json(root / MANIFEST, manifest)
    return Index.open(root)


def add_context(path: str | Path, progress: Progress | None = None) -> Index:
    """Turn on document context (mograg.text.context) for an index built without it.

    Only the distinct context lines naming a section are embedded: each directly embedded
    chunk's stored vector is mixed with such a line's (as a new build would do), pooled
    levels are pooled again, and BM25 is recounted with the context lines. Search results
    are then those of an index built with context.
    """
    from mograg.embed.embedders import embed_cached
    from mograg.store.storage import concat_segments
    from mograg.text.context import CONTEXT_VERSION, CONTEXT_WEIGHT, chunk_contexts

    progress = progress or no_progress
    root = Path(path)
    ix = Index.open(root)
    if ix.manifest.get("context"):
        return ix
    if ix.manifest.get("store"):
        raise MogragError(f"{root} uses a search store; rebuild it with context instead")
    emb = ix.embedder
    with ix._writing():
        parts = [seg.load() for seg in ix.snapshot.segments]
        line_vectors: dict[bytes, np.ndarray] = {}
        for k, data in enumerate(parts):
            progress("context", k, len(parts))
            for j, lv in enumerate(data.levels):
                direct = np.flatnonzero(np.asarray(data.hashes[j]).any(axis=1))
                vec = np.asarray(data.vectors[j], np.float32).copy()
                if len(direct):
                    first = data.atoms[lv["first_atom"][direct]]
                    last = data.atoms[lv["last_atom"][direct]]
                    docs, starts = first["doc"].tolist(), first["start"].tolist()
                    lines = chunk_contexts(docs, starts, lambda d, p=data: p.texts[d],
                                           lambda d, p=data: p.metadata[d],
                                           sectioned_only=True)
                    rows = [i for i, c in enumerate(lines) if c]
                    if rows:
                        cvec = embed_cached(emb, [lines[i] for i in rows], line_vectors)
                        vec[direct[rows]] += CONTEXT_WEIGHT * cvec
                        norms = np.linalg.norm(vec[direct], axis=1, keepdims=True)
                        vec[direct] /= np.maximum(norms, 1e-12)
                    texts = [data.texts[d][s:e] for d, s, e in zip(
                        docs, starts, last["end"].tolist(), strict=True)]
                    hashes = np.array(data.hashes[j])
                    for i, key in enumerate(mixed_keys(texts, lines, emb.name)):
                        hashes[direct[i]] = np.frombuffer(key, dtype=np.uint8)
                    data.hashes[j] = hashes
                pooled = np.setdiff1d(np.arange(len(lv)), direct)
                if j > 0 and len(pooled):
                    sums = np.zeros_like(vec)
                    child = data.levels[j - 1]
                    np.add.at(sums, child["parent"], np.asarray(data.vectors[j - 1], np.float32))
                    norms = np.linalg.norm(sums[pooled], axis=1, keepdims=True)
                    vec[pooled] = sums[pooled] / np.maximum(norms, 1e-12)
                data.vectors[j] = vec.astype(np.asarray(data.vectors[j]).dtype)
        ix._manifest = {**ix.manifest, "context": CONTEXT_VERSION}
        ix._snapshot = None
        everything = set(ix.snapshot.doc_ids)
        merged = parts[0] if len(parts) == 1 else concat_segments(parts)
        ix._commit(merged, remove=everything, progress=progress)
    return Index.open(root)
