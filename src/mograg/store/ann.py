"""Approximate nearest-neighbour search per segment and level (usearch HNSW graphs).

Exact numpy search costs one pass over every vector of a level per query (~1 s at 1M
rows on this machine's class of box). Past ``ANN_MIN_ROWS`` rows a segment's level gets
an HNSW graph instead, chosen by measurement (``bench/ann_choice.py``): usearch builds
fastest, stores float16 / int8 vectors natively and opens a saved graph memory-mapped
(``Index.view``), so opening is instant and a server's resident memory does not grow
with the corpus.

Layout (a derived structure, like the BM25 postings)::

    ann/<name>/<segment>/level-<j>.usearch   # only for levels with >= min_rows chunks

A writer builds the next generation's directory beside the live one; files of segments
that did not change are hard-linked, so a write never rebuilds an unchanged segment, and
a crash leaves the previous manifest and its files intact. An index whose manifest has
no ``ann`` settings (written before this module) is searched exactly.

Search-time switch: ``MOGRAG_ANN=off`` searches exactly even where graphs exist (to
compare approximate with exact on the same index).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mograg.errors import MogragError
from mograg.store.storage import SegmentReader, save_npy

# Below this many chunks in one segment's level, exact numpy search is used. Measured on
# this 2-core box (one BLAS thread, as `mograg serve` runs): an exact pass over 384-d
# float32 rows costs ~0.27 ms at 5k rows, ~0.5 ms at 10k, ~1.1 ms at 20k, ~20 ms at 100k
# (memory-bound, and far worse under load), while a graph query costs ~0.2-0.3 ms at
# 93k rows with recall@50 0.98 (bench/results/ann_choice.json). 10k keeps small indexes
# (tests, demos, a few hundred documents) exact and unbuilt. Override with
# MOGRAG_ANN_MIN_ROWS (read when a segment's graph is built).
ANN_MIN_ROWS = 10_000
# HNSW parameters, measured on medquad-dev's real vectors (recall@50 vs exact, p50, build)
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 128
ANN_DTYPES = ("f16", "i8", "f32")
# int8 graph vectors: on medquad-dev's 93k real finest vectors (bench/results/ann_choice.json)
# recall@50 0.961 vs 0.966 for float16, query p50 0.14 vs 0.25 ms, file 48 vs 82 MB, build
# 5.8 vs 10.3 s; the exact similarities come from the stored float32 rows either way, and
# `mograg eval` is within 0.17 points of exact search on medquad-dev and squad-dev
# (bench/results/eval_ann-i8.json). Indexes built with float16 graphs keep them.
DEFAULT_DTYPE = "i8"
SUFFIX = ".usearch"
# a rewritten segment keeps its predecessor's graph with tombstones until this share of
# the graph's keys is deleted, then the graph is rebuilt from the segment's vectors
MAX_DEAD_SHARE = 0.25
SERIAL_BUILD_ROWS = 20_000  # below this a graph is built by one thread (the same graph each run)


def min_rows_default() -> int:
    """``ANN_MIN_ROWS``, or the ``MOGRAG_ANN_MIN_ROWS`` environment override."""
    raw = os.environ.get("MOGRAG_ANN_MIN_ROWS")
    if not raw:
        return ANN_MIN_ROWS
    try:
        return max(0, int(raw))
    except ValueError:
        raise MogragError(
            f"MOGRAG_ANN_MIN_ROWS={raw!r} is not a number; give a row count such as 20000"
        ) from None


def ann_disabled() -> bool:
    """True when ``MOGRAG_ANN=off``: search exactly even where graphs exist."""
    return os.environ.get("MOGRAG_ANN", "").lower() in ("off", "0", "exact", "no")


def import_usearch() -> Any:
    """The usearch package, or one clear line saying how to install it."""
    try:
        from usearch import index as usearch_index
    except ImportError:
        raise MogragError(
            "approximate search needs usearch (a mograg dependency): pip install usearch "
            "(or search exactly with MOGRAG_ANN=off)"
        ) from None
    return usearch_index


@dataclass(frozen=True)
class AnnSettings:
    """How an index builds its graphs (stored in the manifest under ``ann``)."""

    min_rows: int = ANN_MIN_ROWS
    dtype: str = DEFAULT_DTYPE
    connectivity: int = CONNECTIVITY
    expansion_add: int = EXPANSION_ADD
    expansion_search: int = EXPANSION_SEARCH
    library: str = "usearch"

    def __post_init__(self) -> None:
        if self.dtype not in ANN_DTYPES:
            raise MogragError(
                f"invalid ann dtype {self.dtype!r}; use one of: {', '.join(ANN_DTYPES)}")
        if self.library != "usearch":
            raise MogragError(f"unknown ann library {self.library!r}; this mograg reads usearch")

    @classmethod
    def default(cls) -> AnnSettings:
        """Defaults, with the ``MOGRAG_ANN_MIN_ROWS`` override applied."""
        return cls(min_rows=min_rows_default())

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the manifest."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnSettings:
        """Read the manifest form (unknown keys from newer versions are ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


class AnnIndex:
    """One HNSW graph over the rows of one segment's level.

    Keys are the local row numbers of the segment the graph was built for. A segment
    rewritten by a delete keeps its predecessor's graph (hard-linked) plus ``key_rows``:
    the new row of every key, -1 for a deleted one (a tombstone, never returned).
    """

    def __init__(self, index: Any, n_keys: int, key_rows: np.ndarray | None = None,
                 settings: AnnSettings | None = None) -> None:
        self._index = index
        self.n_keys = n_keys
        self.key_rows = key_rows
        self.n_rows = n_keys if key_rows is None else int((key_rows >= 0).sum())
        self.settings = settings or AnnSettings()

    def fetch_size(self, n: int) -> int:
        """How many candidates to ask for when the caller re-scores them exactly and keeps
        the best ``n``: int8 distances reorder near ties, so an int8 graph is asked for
        up to twice as many, never past its search breadth (the walk visits that many
        anyway, so the extra candidates cost only their re-scoring). On 30k medquad-dev
        vectors (bench/results/ann_int8.json) this takes int8's recall@50 from 0.811 to
        0.835, float16's being 0.840."""
        if self.settings.dtype != "i8":
            return n
        return max(n, min(2 * n, self.settings.expansion_search))

    @classmethod
    def build(cls, vectors: np.ndarray, settings: AnnSettings, threads: int = 0) -> AnnIndex:
        """Build a graph over ``vectors`` (rows L2-normalised; inner product = cosine).

        Graphs under ``SERIAL_BUILD_ROWS`` rows are built by one thread: concurrent
        insertion makes the graph depend on thread timing, and a small graph built that
        way could miss a query's nearest rows in one run and not the next; one thread
        builds the same graph every time, in well under a second at that size.
        """
        usearch_index = import_usearch()
        index = usearch_index.Index(
            ndim=int(vectors.shape[1]), metric="ip", dtype=settings.dtype,
            connectivity=settings.connectivity, expansion_add=settings.expansion_add,
            expansion_search=settings.expansion_search,
        )
        n = len(vectors)
        if not threads:
            threads = 1 if n < SERIAL_BUILD_ROWS else (os.cpu_count() or 1)
        step = 65_536  # bounded float32 copies of a float16 / memory-mapped matrix
        for lo in range(0, n, step):
            block = np.ascontiguousarray(vectors[lo : lo + step], dtype=np.float32)
            index.add(np.arange(lo, lo + len(block), dtype=np.uint64), block,
                      threads=threads)
        return cls(index, n, settings=settings)

    def save(self, path: Path) -> None:
        """Write the graph durably: temp file, fsync, rename."""
        tmp = path.with_name(f".{path.name}.tmp")
        self._index.save(str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    @classmethod
    def open(cls, path: Path, dim: int, settings: AnnSettings) -> AnnIndex:
        """Memory-map a saved graph (nothing is read until searched) and its key map."""
        usearch_index = import_usearch()
        index = usearch_index.Index(
            ndim=dim, metric="ip", dtype=settings.dtype, connectivity=settings.connectivity,
            expansion_search=settings.expansion_search,
        )
        try:
            index.view(str(path))
        except (RuntimeError, ValueError, OSError) as exc:
            raise MogragError(
                f"approximate-search file {path} is unreadable ({exc}); rebuild the index "
                "(or search exactly with MOGRAG_ANN=off)"
            ) from None
        rows_file = rows_path(path)
        key_rows = np.load(rows_file, mmap_mode="r") if rows_file.exists() else None
        return cls(index, len(index), key_rows, settings)

    def search(
        self, qvec: np.ndarray, n: int, deleted: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Local rows of the ``n`` best matches (best first) and their approximate
        similarities; rows where ``deleted`` is True are never returned (over-fetch)."""
        n = min(n, self.n_rows)
        if n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        q = np.ascontiguousarray(qvec, dtype=np.float32)
        dead = self.n_keys - self.n_rows
        fetch = min(self.n_keys, n + (n * dead) // max(1, self.n_keys) + 8 if dead else n)
        while True:
            found = self._index.search(q, fetch, threads=1)
            rows = np.asarray(found.keys, np.int64)
            sims = 1.0 - np.asarray(found.distances, np.float32)
            if self.key_rows is not None:
                rows = np.asarray(self.key_rows[rows], np.int64)
                live = rows >= 0
                rows, sims = rows[live], sims[live]
            if deleted is not None:
                keep = ~deleted[rows]
                rows, sims = rows[keep], sims[keep]
            if len(rows) >= n or fetch >= self.n_keys:
                return rows[:n], sims[:n]
            fetch = min(self.n_keys, fetch * 4)


def stores(path: Path, dtype: str) -> bool:
    """True if the saved graph at ``path`` exists and holds ``dtype`` vectors: a graph of
    another dtype (the settings changed, e.g. ``enable_ann`` with int8 on an index whose
    graphs are float16) is rebuilt, not carried into the next generation."""
    if not path.exists():
        return False
    try:
        meta = import_usearch().Index.metadata(str(path))
    except (RuntimeError, ValueError, OSError):
        return False
    kind = meta.get("kind_scalar") if meta else None
    return getattr(kind, "name", "").lower() == dtype


def level_path(directory: Path, segment: str, j: int) -> Path:
    """Where segment ``segment``'s level-``j`` graph lives under ``directory``."""
    return directory / segment / f"level-{j}{SUFFIX}"


def rows_path(graph_path: Path) -> Path:
    """The key -> row map stored beside a graph inherited by a rewritten segment."""
    return graph_path.with_name(graph_path.name.replace(SUFFIX, ".rows.npy"))


def _link(old: Path, dest: Path) -> None:
    os.link(old, dest)
    if rows_path(old).exists():
        os.link(rows_path(old), rows_path(dest))


def write_level(
    target: Path, previous: Path | None, segment: str, j: int, vectors: np.ndarray,
    settings: AnnSettings, origin: tuple[str, np.ndarray] | None = None,
) -> bool:
    """Give ``segment``'s level ``j`` a graph under ``target`` if it has at least
    ``settings.min_rows`` rows, and return True if one was built.

    Hard-linked from ``previous`` when that generation has it (segments are immutable).
    ``origin = (old segment, kept rows mask)`` names the segment this one was cut from
    by a delete: its graph is inherited with the dropped rows as tombstones, unless
    more than ``MAX_DEAD_SHARE`` of the graph would be dead, then it is rebuilt."""
    if len(vectors) < max(1, settings.min_rows):
        return False
    dest = level_path(target, segment, j)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if previous is not None:
        old = level_path(previous, segment, j)
        if old.exists() and stores(old, settings.dtype):
            _link(old, dest)
            return False
        if origin is not None and stores(level_path(previous, origin[0], j), settings.dtype):
            old = level_path(previous, origin[0], j)
            kept = origin[1]
            prior = rows_path(old)
            key_rows = np.load(prior) if prior.exists() else np.arange(len(kept), dtype=np.int64)
            new_row = np.cumsum(kept) - 1
            alive = key_rows >= 0
            alive[alive] = kept[key_rows[alive]]
            mapped = np.where(alive, new_row[np.maximum(key_rows, 0)], -1).astype(np.int64)
            if (mapped < 0).mean() <= MAX_DEAD_SHARE:
                os.link(old, dest)
                save_npy(rows_path(dest), mapped)
                return False
    AnnIndex.build(vectors, settings).save(dest)
    return True


def cut_origin(
    seg: SegmentReader, old: list[tuple[str, SegmentReader]]
) -> tuple[str, list[np.ndarray]] | None:
    """If segment ``seg`` is one of the ``old`` (name, segment) pairs with some documents
    deleted -- the same documents in the same order, the same finest chunks by content
    hash -- return that segment's name and, per level, which of its rows ``seg`` kept."""
    if not seg.doc_ids:
        return None
    wanted = set(seg.doc_ids)
    for name, o in old:
        keep_doc = np.fromiter((d in wanted for d in o.doc_ids), bool, len(o.doc_ids))
        if int(keep_doc.sum()) != len(seg.doc_ids) or keep_doc.all():
            continue
        if [d for d, k in zip(o.doc_ids, keep_doc.tolist(), strict=True) if k] != seg.doc_ids:
            continue
        kept = [keep_doc[np.asarray(o.atoms["doc"])[np.asarray(lv["first_atom"])]]
                for lv in o.levels]
        if any(int(k.sum()) != len(lv) for k, lv in zip(kept, seg.levels, strict=True)):
            continue
        if np.array_equal(np.asarray(o.hashes(0))[kept[0]], np.asarray(seg.hashes(0))):
            return name, kept
    return None


def open_levels(
    directory: Path, segments: list[str], n_levels: int, dim: int, settings: AnnSettings
) -> list[list[AnnIndex | None]]:
    """Per level, per segment: the graph, or None where that level is searched exactly."""
    out: list[list[AnnIndex | None]] = []
    for j in range(n_levels):
        row: list[AnnIndex | None] = []
        for name in segments:
            path = level_path(directory, name, j)
            row.append(AnnIndex.open(path, dim, settings) if path.exists() else None)
        out.append(row)
    return out
