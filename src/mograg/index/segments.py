"""Building a segment from documents: sentences, the level tree, vectors (reused by hash).

:class:`SegmentBuilder` is what ``Index.add`` and the ingestion workers share: it turns
documents into an in-memory :class:`~mograg.store.storage.SegmentData` without touching
the index directory; committing it is the index's job.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from mograg.embed.embedders import Embedder, content_hash, embed_cached
from mograg.store.manifest import Manifest
from mograg.store.snapshot import Snapshot
from mograg.store.storage import SegmentData
from mograg.text.context import CONTEXT_WEIGHT, MIX_EVERY_LINE, chunk_contexts
from mograg.text.levels import ATOM_DTYPE, build_levels
from mograg.types import Document

Progress = Callable[[str, int, int], None]
EMBED_BATCH = 512


def no_progress(stage: str, done: int, total: int) -> None:
    """A progress callback that ignores every report."""
    del stage, done, total


def mixed_keys(texts: list[str], lines: list[str], salt: str) -> list[bytes]:
    """Content keys of chunk vectors: of the text, and of the context line it is mixed
    with when it has one (equal text, other context: another vector)."""
    if not lines:
        return [content_hash(t, salt) for t in texts]
    return [content_hash(f"{c}\x1f{t}" if c else t, salt)
            for c, t in zip(lines, texts, strict=True)]


@dataclass
class WriteReport:
    """What a write changed."""

    added: int = 0
    replaced: int = 0
    deleted: int = 0
    missing: list[str] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    pooled: int = 0
    seconds: float = 0.0



def existing_vectors(
    snap: Snapshot, wanted: Collection[bytes] | None = None
) -> dict[bytes, np.ndarray]:
    """Vectors already in a snapshot, by content hash (only directly embedded ones); with
    ``wanted``, only those keys -- found by array lookups, without a dict of every stored
    chunk (a write of a few documents to a million-chunk index)."""
    cache: dict[bytes, np.ndarray] = {}
    if wanted is not None and not wanted:
        return cache
    prefixes = (np.unique(np.frombuffer(b"".join(k[:8] for k in wanted), dtype=np.uint64))
                if wanted is not None else None)
    for seg in snap.segments:
        for j in range(len(snap.sizes)):
            hashes = np.asarray(seg.hashes(j))
            vecs = seg.vectors[j]
            if prefixes is None:
                rows = np.flatnonzero(hashes.any(axis=1))
            else:  # first 8 bytes as one integer, then the whole key
                first = np.ascontiguousarray(hashes[:, :8]).view(np.uint64).ravel()
                rows = np.flatnonzero(np.isin(first, prefixes))
            for i in rows.tolist():
                key = hashes[i].tobytes()
                if (wanted is None and any(key)) or (wanted is not None and key in wanted):
                    cache[key] = vecs[i]
    return cache


class SegmentBuilder:
    """Documents -> :class:`SegmentData` for the index settings in ``manifest``.

    ``known_vectors(keys)`` returns the vectors to reuse among the content hashes ``keys``
    (called once per build, after splitting); the default reuses nothing.
    """

    def __init__(
        self,
        manifest: Manifest,
        embedder: Embedder,
        known_vectors: Callable[[set[bytes]], dict[bytes, np.ndarray]] | None = None,
    ) -> None:
        self.manifest = manifest
        self.embedder = embedder
        self.known_vectors = known_vectors or (lambda keys: {})

    def build(
        self, docs: list[Document], report: WriteReport, progress: Progress = no_progress
    ) -> SegmentData | None:
        """Split, chunk and embed ``docs``; None when there are none."""
        if not docs:
            return None
        # the sentence splitter loads a large library: only writes need it, not searches
        from mograg.text.segment import split_with_counts

        sizes = list(self.manifest["levels"])
        atom_rows: list[tuple[int, int, int, int]] = []
        for di, d in enumerate(docs):
            spans, counts = split_with_counts(d.text, sizes[0])
            atom_rows.extend(
                (di, s, e, c) for (s, e), c in zip(spans, counts, strict=True)
            )
            progress("split", di + 1, len(docs))
        atoms = np.array(atom_rows, dtype=ATOM_DTYPE) if atom_rows else np.zeros(0, ATOM_DTYPE)
        levels = build_levels(atoms, sizes)
        report.chunks = sum(len(lv) for lv in levels)
        vectors, hashes = self.vectors(docs, atoms, levels, report, progress)
        return SegmentData(
            doc_ids=[d.id for d in docs],
            metadata=[dict(d.metadata) for d in docs],
            texts=[d.text for d in docs],
            atoms=atoms,
            levels=levels,
            vectors=vectors,
            hashes=hashes,
        )

    def vectors(
        self,
        docs: list[Document],
        atoms: np.ndarray,
        levels: list[np.ndarray],
        report: WriteReport,
        progress: Progress,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Vectors and content hashes of every level's chunks (coarser ones pooled or embedded)."""
        emb = self.embedder
        dtype = np.dtype(self.manifest["vector_dtype"])
        pool_all = self.manifest["level_vectors"] == "pool"
        max_tok = int(self.manifest["max_tokens"])
        salt = emb.name
        vectors: list[np.ndarray] = []
        hashes: list[np.ndarray] = []
        jobs: list[tuple[int, np.ndarray, list[str], list[str], list[bytes]]] = []
        for j, lv in enumerate(levels):
            direct = np.ones(len(lv), bool) if j == 0 else (lv["n_tokens"] <= max_tok)
            if pool_all and j > 0:
                direct[:] = False
            idx = np.flatnonzero(direct)
            first, last = atoms[lv["first_atom"][idx]], atoms[lv["last_atom"][idx]]
            texts = [
                docs[d].text[s:e]
                for d, s, e in zip(
                    first["doc"].tolist(), first["start"].tolist(), last["end"].tolist(),
                    strict=True,
                )
            ]
            ctx: list[str] = []
            version = self.manifest.get("context")
            if version:  # mixed with its context line's vector where the line names a section
                ctx = chunk_contexts(first["doc"].tolist(), first["start"].tolist(),
                                     lambda d: docs[d].text, lambda d: docs[d].metadata,
                                     sectioned_only=version not in MIX_EVERY_LINE)
            keys = mixed_keys(texts, ctx, salt)
            jobs.append((j, idx, texts, ctx, keys))
        cache = self.known_vectors({k for *_, keys in jobs for k in keys})
        total = sum(len(t) for _, _, t, _, _ in jobs)
        raw_cache: dict[bytes, np.ndarray] = {}  # chunk and context vectors before mixing
        done = 0
        before = len(cache)
        for j, idx, texts, ctx, keys in jobs:
            lv = levels[j]
            vec = np.zeros((len(lv), emb.dim), dtype=np.float32)
            hsh = np.zeros((len(lv), 16), dtype=np.uint8)
            for b in range(0, len(texts), EMBED_BATCH):
                batch = texts[b : b + EMBED_BATCH]
                report.reused += sum(1 for key in keys[b : b + EMBED_BATCH] if key in cache)
                if ctx:
                    vec[idx[b : b + EMBED_BATCH]] = self.context_vectors(
                        batch, ctx[b : b + EMBED_BATCH], keys[b : b + EMBED_BATCH], cache,
                        raw_cache)
                else:
                    vec[idx[b : b + EMBED_BATCH]] = embed_cached(emb, batch, cache)
                done += len(batch)
                progress("embed", done, total)
            for k, key in zip(idx.tolist(), keys, strict=True):
                hsh[k] = np.frombuffer(key, dtype=np.uint8)
            if j > 0:
                pooled = np.setdiff1d(np.arange(len(lv)), idx)
                if len(pooled):
                    child = levels[j - 1]
                    sums = np.zeros_like(vec)
                    np.add.at(sums, child["parent"], vectors[j - 1].astype(np.float32))
                    norms = np.linalg.norm(sums[pooled], axis=1, keepdims=True)
                    vec[pooled] = sums[pooled] / np.maximum(norms, 1e-12)
                    report.pooled += len(pooled)
            vectors.append(vec.astype(dtype))
            hashes.append(hsh)
        report.embedded = len(cache) - before
        return vectors, hashes

    def context_vectors(
        self, texts: list[str], lines: list[str], keys: list[bytes],
        cache: dict[bytes, np.ndarray], raw_cache: dict[bytes, np.ndarray],
    ) -> np.ndarray:
        """Vectors of chunks mixed with their context line's vector, renormalised:
        ``normalise(chunk + CONTEXT_WEIGHT * context)`` (a chunk without a line: its own
        vector). Mixed vectors already in
        ``cache`` (by ``keys``) are reused; new ones are added to it."""
        out = np.zeros((len(texts), self.embedder.dim), dtype=np.float32)
        todo = [i for i, k in enumerate(keys) if k not in cache]
        for i, k in enumerate(keys):
            if k in cache:
                out[i] = cache[k]
        if todo:
            raw = embed_cached(self.embedder, [texts[i] for i in todo], raw_cache)
            with_line = [i for i, t in enumerate(todo) if lines[t]]
            if with_line:
                cvec = embed_cached(self.embedder, [lines[todo[i]] for i in with_line],
                                    raw_cache)
                raw[with_line] += CONTEXT_WEIGHT * cvec
            raw /= np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
            out[todo] = raw
            for i, t in enumerate(todo):
                cache[keys[t]] = raw[i]
        return out
