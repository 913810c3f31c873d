"""A read-only view of one committed generation of an index.

Readers hold a ``Snapshot``; writers build the next generation beside it and swap
the manifest, so a reader never sees a half-written index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mograg.embed.base import calibrate_cosine, cosine_floor
from mograg.errors import IndexFormatError
from mograg.store.ann import AnnIndex, AnnSettings, ann_disabled, open_levels
from mograg.store.graph_files import Graph, read_graph
from mograg.store.lexical import Bm25, TermPostings, is_current, segment_dir
from mograg.store.manifest import Manifest
from mograg.store.storage import SegmentReader, concat_tables
from mograg.text.levels import children_ranges

# how far a stored pooled vector may be from its children's normalised sum (float32
# rounding of the sum and the division is ~1e-7)
POOLED_TOL = 1e-5
POOLED_CHECK_ROWS = 4096  # chunks per block when that is checked


class Snapshot:
    """Concatenated, globally numbered view over the segments named by a manifest."""

    def __init__(
        self, root: Path, manifest: Manifest, readers: Mapping[str, SegmentReader] | None = None,
        eager: bool = True,
    ) -> None:
        """``readers``: segments already open by name (immutable, so a writer's next
        snapshot reuses the current one's instead of reading them again).

        ``eager=False`` (writers): the concatenated tables, BM25 postings and graphs are
        read on first use, so a write to a large index pays only for what it touches;
        readers open everything now, so files collected later cannot break them."""
        self.root = root
        self.manifest = manifest
        self.sizes: list[int] = list(manifest["levels"])
        # cosine of unrelated texts under this index's embedder: dense scores are rescaled so
        # that it maps to 0 (identity for MiniLM), keeping fixed thresholds meaningful
        self.cosine_floor = cosine_floor(manifest.get("embedder", {}).get("name", ""))
        n_levels = len(self.sizes)
        readers = readers or {}
        self.segments = [
            readers.get(name) or SegmentReader(root / "segments" / name, n_levels)
            for name in manifest["segments"]
        ]
        self.doc_ids: list[str] = [d for s in self.segments for d in s.doc_ids]
        self.doc_index: dict[str, int] = {d: i for i, d in enumerate(self.doc_ids)}
        # where document i lives: (segment, local index)
        self._doc_loc: list[tuple[int, int]] = [
            (si, li) for si, s in enumerate(self.segments) for li in range(len(s.doc_ids))
        ]
        # plain views of the memory maps: indexing a np.memmap costs ~3x more (per-view
        # bookkeeping), and a search reads a few dozen small slices
        self.vectors: list[list[np.ndarray]] = [
            [np.asarray(s.vectors[j]) for s in self.segments] for j in range(n_levels)
        ]
        self._texts: dict[int, str] = {}
        self._norms: dict[int, np.ndarray | None] = {}  # see _pooled_norms
        self._doc_bounds: dict[int, np.ndarray] = {}
        if eager:
            _ = self.children, self.lexical, self.ann, self.graph

    @cached_property
    def _tables(self) -> tuple[np.ndarray, list[np.ndarray]]:
        parts = [(s.atoms, s.levels, len(s.doc_ids)) for s in self.segments]
        return concat_tables(parts, len(self.sizes))

    @cached_property
    def atoms(self) -> np.ndarray:
        """Every sentence piece (doc, start, end, n_tokens), numbered across segments."""
        return self._tables[0]

    @cached_property
    def levels(self) -> list[np.ndarray]:
        """Per level, every chunk's table, numbered across segments."""
        return self._tables[1]

    @cached_property
    def children(self) -> list[np.ndarray]:
        """Per level, where each chunk's children start in the finer level."""
        return children_ranges(self.levels)

    @cached_property
    def lexical(self) -> list[Bm25]:
        """BM25 per level (empty when the generation has no postings yet)."""
        lex = self.manifest.get("derived", {}).get("lexical")
        return self._load_lexical(self.root / "lexical" / lex, len(self.sizes)) if lex else []

    @cached_property
    def ann(self) -> list[list[AnnIndex | None]]:
        """Approximate-search graphs (memory-mapped) per level and segment, where the
        index has them."""
        ann_dir = self.manifest.get("derived", {}).get("ann")
        ann_settings = self.manifest.get("ann")
        if not (ann_dir and ann_settings) or ann_disabled():
            return []
        return open_levels(self.root / "ann" / ann_dir, list(self.manifest["segments"]),
                           len(self.sizes), int(self.manifest["dim"]),
                           AnnSettings.from_dict(ann_settings))

    @cached_property
    def graph(self) -> Graph | None:
        """The MoGG graph (read at open by readers, so a later garbage collection of its
        directory cannot break them)."""
        name = self.manifest.get("derived", {}).get("graph")
        return read_graph(self.root / "graph" / name) if name else None

    def _load_lexical(self, directory: Path, n_levels: int) -> list[Bm25]:
        if not directory.is_dir():  # collected by a writer after our manifest was read
            raise IndexFormatError(f"BM25 data {directory} is missing; rebuild the index")
        if not is_current(directory):
            # written by an older mograg (one bm25s index per level): count the terms in
            # memory now; the next write stores them per segment
            return [Bm25([TermPostings.from_texts(self.indexed_texts(j))])
                    for j in range(n_levels)]
        try:
            return [
                Bm25([TermPostings.load(segment_dir(directory, name, j))
                      for name in self.manifest["segments"]])
                for j in range(n_levels)
            ]
        except (OSError, ValueError) as exc:
            raise IndexFormatError(
                f"BM25 data of {self.root} is unreadable ({exc}); rebuild the index"
            ) from None

    @property
    def n_docs(self) -> int:
        """Number of documents."""
        return len(self.doc_ids)

    def n_chunks(self, j: int) -> int:
        """Number of chunks at level ``j``."""
        return len(self.levels[j])

    def text(self, doc: int) -> str:
        """Full text of global document ``doc`` (cached)."""
        t = self._texts.get(doc)
        if t is None:
            si, li = self._doc_loc[doc]
            t = self.segments[si].text(li)
            if len(self._texts) > 4096:
                self._texts.clear()
            self._texts[doc] = t
        return t

    def metadata(self, doc: int) -> dict[str, Any]:
        """Metadata of global document ``doc``."""
        si, li = self._doc_loc[doc]
        return self.segments[si].metadata[li]

    def chunk_span(self, j: int, c: int) -> tuple[int, int, int]:
        """``(doc, start, end)`` of chunk ``c`` at level ``j``."""
        first, last = self.atom_ranges[j]
        doc, start, end = self._atom_columns
        a0 = first[c]
        return int(doc[a0]), int(start[a0]), int(end[last[c]])

    @cached_property
    def atom_ranges(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per level, each chunk's first and last sentence piece (columns of
        :attr:`levels`: reading one value from a column is ~5x faster than from a row)."""
        return [(lv["first_atom"], lv["last_atom"]) for lv in self.levels]

    @cached_property
    def token_totals(self) -> np.ndarray:
        """Tokens of the sentence pieces before each one (``n_atoms + 1`` entries): the
        tokens of pieces ``a:b`` are ``token_totals[b] - token_totals[a]``."""
        totals = np.zeros(len(self.atoms) + 1, np.int64)
        np.cumsum(self.atoms["n_tokens"], out=totals[1:])
        return totals

    @cached_property
    def _atom_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.atoms["doc"], self.atoms["start"], self.atoms["end"]

    def chunk_text(self, j: int, c: int) -> str:
        """Text of chunk ``c`` at level ``j``."""
        doc, start, end = self.chunk_span(j, c)
        return self.text(doc)[start:end]

    def level_texts(self, j: int, lo: int = 0, hi: int | None = None) -> list[str]:
        """Texts of the chunks ``lo:hi`` (default all) of level ``j`` in order."""
        lv = self.levels[j][lo:hi]
        return self._texts_of(self.atoms[lv["first_atom"]], self.atoms[lv["last_atom"]], 0,
                              False)

    def indexed_texts(self, j: int, lo: int = 0, hi: int | None = None) -> list[str]:
        """Chunk texts as BM25-counted: with each chunk's context line
        (title, periods, section) when the index records one (``manifest["context"]``)."""
        lv = self.levels[j][lo:hi]
        return self._texts_of(self.atoms[lv["first_atom"]], self.atoms[lv["last_atom"]], 0,
                              bool(self.manifest.get("context")))

    def segment_indexed_texts(self, k: int, j: int) -> list[str]:
        """:meth:`indexed_texts` of segment ``k``'s level-``j`` chunks, read from that
        segment's own tables (no concatenation of the whole index)."""
        seg = self.segments[k]
        lv = seg.levels[j]
        offset = sum(len(s.doc_ids) for s in self.segments[:k])
        return self._texts_of(seg.atoms[lv["first_atom"]], seg.atoms[lv["last_atom"]], offset,
                              bool(self.manifest.get("context")))

    def _texts_of(self, first: np.ndarray, last: np.ndarray, doc_offset: int,
                  context: bool) -> list[str]:
        docs = (np.asarray(first["doc"], dtype=np.int64) + doc_offset).tolist()
        starts = first["start"].tolist()
        texts = [self.text(d)[s:e]
                 for d, s, e in zip(docs, starts, last["end"].tolist(), strict=True)]
        if not context:
            return texts
        from mograg.text.context import with_context

        return with_context(texts, docs, starts, self.text, self.metadata)

    def dense_scores(self, j: int, qvec: np.ndarray) -> np.ndarray:
        """Cosine similarity of the query vector to every chunk of level ``j``.

        Calibrated by the embedder's cosine floor (see :func:`calibrate_cosine`).
        """
        parts = [np.asarray(m @ qvec.astype(m.dtype), dtype=np.float32) for m in self.vectors[j]]
        scores = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return calibrate_cosine(scores, self.cosine_floor)

    def similarity_levels(
        self, qvec: np.ndarray, levels: Sequence[int]
    ) -> dict[int, np.ndarray]:
        """The query's cosine similarity (not calibrated) to every chunk of each of
        ``levels``, in one pass down the level tree.

        A level whose vectors are pooled (each chunk's vector is the normalised sum of its
        children's) takes its similarities from the level below's, when that level is
        among ``levels``: the sum of its children's similarities over the norm of the sum
        of their vectors, instead of reading every vector again. The same value up to
        float32 rounding (a few units in the last place).
        """
        raw: dict[int, np.ndarray] = {}
        for j in sorted(levels):
            norms = self._pooled_norms(j) if j - 1 in raw else None
            if norms is not None:
                sums = np.add.reduceat(raw[j - 1].astype(np.float64), self.children[j][:-1])
                raw[j] = (sums / norms).astype(np.float32)
            else:
                parts = [np.asarray(m @ qvec.astype(m.dtype), dtype=np.float32)
                         for m in self.vectors[j]]
                raw[j] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        return raw

    def _pooled_norms(self, j: int) -> np.ndarray | None:
        """Norms of the sums of each level-``j`` chunk's children's vectors, when level
        ``j``'s vectors are those sums normalised (checked once); else None."""
        if j not in self._norms:
            self._norms[j] = self._check_pooled(j)
        return self._norms[j]

    def _check_pooled(self, j: int) -> np.ndarray | None:
        if (j == 0 or self.manifest.get("level_vectors") != "pool"
                or self.manifest.get("vector_dtype", "float32") != "float32"):
            return None
        lo = self.children[j]
        n = self.n_chunks(j)
        if not len(lo) or len(lo) - 1 != n or (np.diff(lo) < 1).any():
            return None
        norms = np.empty(n, np.float64)
        for a in range(0, n, POOLED_CHECK_ROWS):  # in blocks: float64 copies stay small
            b = min(n, a + POOLED_CHECK_ROWS)
            c0, c1 = int(lo[a]), int(lo[b])
            below = self.chunk_vectors(j - 1, np.arange(c0, c1)).astype(np.float64)
            sums = np.add.reduceat(below, lo[a:b] - c0, axis=0)
            block = np.linalg.norm(sums, axis=1)
            stored = self.chunk_vectors(j, np.arange(a, b)).astype(np.float64)
            if (block <= 1e-12).any() or np.abs(sums / block[:, None] - stored).max() > POOLED_TOL:
                return None  # written another way (embedded coarse chunks, an older mograg)
            norms[a:b] = block
        return norms

    def uses_ann(self, j: int) -> bool:
        """True if some segment searches level ``j`` approximately."""
        return bool(self.ann) and any(a is not None for a in self.ann[j])

    def dense_top(self, j: int, qvec: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` chunks of level ``j`` most similar to ``qvec`` (best first) and their
        exact cosine similarities: graph search where a segment has a graph, exact
        elsewhere, merged across segments."""
        q = np.asarray(qvec, np.float32)
        bounds = self._bounds[j]
        found = []
        for s, mat in enumerate(self.vectors[j]):
            graph = self.ann[j][s] if self.ann else None
            rows: np.ndarray | None = None
            if graph is not None:
                rows, _ = graph.search(q, graph.fetch_size(n))
                if len(rows) < min(n, graph.n_rows):
                    # asked for most of a small segment, the graph's walk may not reach
                    # every live row: search that segment exactly instead
                    rows = None
            if rows is None and n >= len(mat):
                rows = np.arange(len(mat))
            elif rows is None:
                sims = np.asarray(mat @ q.astype(mat.dtype), dtype=np.float32)
                rows = np.argpartition(-sims, n - 1)[:n]
            found.append(rows.astype(np.int64) + int(bounds[s]))
        if not found:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids = np.concatenate(found)
        scores = self.chunk_vectors(j, ids) @ q
        order = np.lexsort((ids, -scores))[:n]
        return ids[order], scores[order].astype(np.float32)

    def chunk_vectors(self, j: int, ids: np.ndarray) -> np.ndarray:
        """Vectors of the given chunks of level ``j`` (float32)."""
        mats = self.vectors[j]
        if len(mats) == 1:
            return np.asarray(mats[0][ids], dtype=np.float32)
        bounds = self._bounds[j]
        seg = np.searchsorted(bounds, ids, side="right") - 1
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for s in np.unique(seg).tolist():
            mask = seg == s
            out[mask] = mats[s][ids[mask] - bounds[s]]
        return out

    @cached_property
    def _bounds(self) -> list[np.ndarray]:
        return [np.cumsum([0] + [len(m) for m in mats]) for mats in self.vectors]

    @cached_property
    def ancestors(self) -> list[np.ndarray]:
        """For each level ``j``: the level-``j`` chunk containing each finest chunk.

        Levels pack consecutive chunks, so every array is non-decreasing and the finest
        chunks under a level-``j`` chunk form one contiguous range.
        """
        anc = [np.arange(self.n_chunks(0), dtype=np.int64)]
        for j in range(1, len(self.sizes)):
            anc.append(self.levels[j - 1]["parent"][anc[-1]].astype(np.int64))
        return anc

    def finest_range(self, j: int, c: int) -> tuple[int, int]:
        """``[lo, hi)``: the finest chunks inside chunk ``c`` of level ``j``."""
        bounds = self._finest_bounds[j]
        if 0 <= c < len(bounds) - 1:
            return int(bounds[c]), int(bounds[c + 1])
        anc = self.ancestors[j]
        return int(np.searchsorted(anc, c, "left")), int(np.searchsorted(anc, c, "right"))

    def finest_bounds(self, j: int) -> np.ndarray:
        """``n_chunks(j) + 1`` offsets: chunk ``c`` of level ``j`` holds the finest chunks
        ``finest_bounds(j)[c]:finest_bounds(j)[c + 1]``."""
        return self._finest_bounds[j]

    @cached_property
    def _finest_bounds(self) -> list[np.ndarray]:
        """Per level: the first finest chunk inside each chunk, and the total at the end
        (a search asks for finest ranges dozens of times)."""
        return [np.searchsorted(anc, np.arange(len(lv) + 1), "left")
                for anc, lv in zip(self.ancestors, self.levels, strict=True)]

    def doc_bounds(self, j: int) -> np.ndarray:
        """``n_docs + 1`` offsets: the level-``j`` chunks of document ``d`` are
        ``doc_bounds(j)[d]:doc_bounds(j)[d + 1]`` (chunks are numbered document by document)."""
        if j not in self._doc_bounds:
            chunk_docs = self.atoms["doc"][self.levels[j]["first_atom"]]
            self._doc_bounds[j] = np.searchsorted(
                chunk_docs, np.arange(self.n_docs + 1)).astype(np.int64)
        return self._doc_bounds[j]

    @cached_property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.manifest["dim"])

    def document_of_atom(self) -> np.ndarray:
        """Document index of every atom."""
        return self.atoms["doc"]
