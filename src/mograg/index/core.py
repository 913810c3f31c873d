"""The multi-granularity index: create, open, add, delete, search."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mograg.embed.base import embed_queries
from mograg.embed.embedders import Embedder, make_embedder
from mograg.errors import IndexFormatError, MogragError
from mograg.graph.build import GraphSettings
from mograg.index.blas_threads import one_blas_thread
from mograg.index.commit import write_generation
from mograg.index.segments import (
    Progress,
    SegmentBuilder,
    WriteReport,
    existing_vectors,
    no_progress,
)
from mograg.index.settings import IndexSettings
from mograg.retrieval.granularity_model import describe_search_router
from mograg.retrieval.rank import DEFAULT_CANDIDATES, make_query, rank_levels
from mograg.retrieval.routing import fixed_search, route_search
from mograg.retrieval.sources import describe_sources
from mograg.store.ann import AnnSettings
from mograg.store.backend import SearchBackend
from mograg.store.factory import open_backend
from mograg.store.manifest import Manifest
from mograg.store.snapshot import Snapshot
from mograg.store.storage import (
    MANIFEST,
    SegmentData,
    SegmentReader,
    atomic_write_json,
    check_writable,
    read_manifest,
    writer_lock,
)
from mograg.text.levels import DEFAULT_LEVELS
from mograg.text.safejson import has_lone_surrogate
from mograg.text.tokens import count_tokens
from mograg.types import (
    DEFAULT_STRATEGY,
    Document,
    Granularity,
    LevelRanking,
    Mode,
    Query,
    SearchResult,
    check_mode,
)

__all__ = ["Index", "WriteReport", "no_progress", "shared_embedder"]

OPEN_ATTEMPTS = 5


_EMBEDDERS: dict[str | None, Embedder] = {}


def shared_embedder(spec: str | None) -> Embedder:
    """One embedder per spec per process (loading a model costs about a second)."""
    if spec not in _EMBEDDERS:
        _EMBEDDERS[spec] = make_embedder(spec)
    return _EMBEDDERS[spec]


class Index:
    """An index directory holding every document at several granularities."""

    def __init__(self, root: Path, manifest: Manifest, embedder: Embedder | None = None):
        self.root = root
        self._manifest = manifest
        self._snapshot: Snapshot | None = None
        self._backend: SearchBackend | None = None
        self._embedder = embedder
        self.router_cache: dict[str, Any] = {}
        # open readers of immutable segments by name, reused by the next snapshot
        self._readers: dict[str, SegmentReader] = {}

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(
        cls,
        path: str | Path,
        levels: str | Sequence[int] = DEFAULT_LEVELS,
        embedder: str | None = None,
        vector_dtype: str = "float32",
        level_vectors: str = "pool",
        exist_ok: bool = False,
        graph: bool | GraphSettings = False,
        store: str | None = None,
        settings: IndexSettings | None = None,
        context: bool = False,
        ann: bool | AnnSettings = True,
    ) -> Index:
        """Create an empty index at ``path`` (or open it if ``exist_ok`` and it exists).

        Give either ``settings`` or the individual settings (``levels`` ... ``ann``).
        ``context``: BM25-count every chunk with its document's title, periods and section
        heading, and embed it with them where it has a section (:mod:`mograg.text.context`);
        recorded in the manifest. Off by
        default (see :class:`IndexSettings`).
        ``ann``: approximate search of large levels, True for the defaults.
        """
        root = Path(path)
        if (root / MANIFEST).exists():
            if not exist_ok:
                raise MogragError(f"an index already exists at {root}; use Index.open")
            return cls.open(root)
        if root.exists() and root.is_file():
            raise MogragError(f"{root} is a file; give a directory path for the index")
        if root.exists() and any(p for p in root.iterdir() if p.name != ".lock"):
            raise MogragError(f"{root} exists and is not empty; give a new or empty directory")
        if settings is None:
            graph_settings = None
            if graph:
                graph_settings = graph if isinstance(graph, GraphSettings) else GraphSettings()
            settings = IndexSettings(
                levels=levels if isinstance(levels, str) else tuple(levels),  # type: ignore[arg-type]
                embedder=embedder, vector_dtype=vector_dtype, level_vectors=level_vectors,
                graph=graph_settings, store=store, context=context,
                ann=(ann if isinstance(ann, AnnSettings) else AnnSettings.default())
                if ann else None,
            )
        emb = shared_embedder(settings.embedder)
        manifest = settings.new_manifest(emb)
        check_writable(root.parent if not root.exists() else root)
        with writer_lock(root):
            # before anything is written: a failure leaves no directory
            open_backend(manifest).create()
            (root / "segments").mkdir(exist_ok=True)
            atomic_write_json(root / MANIFEST, manifest)
        return cls(root, manifest, emb)

    @classmethod
    def open(cls, path: str | Path) -> Index:
        """Open an existing index."""
        root = Path(path)
        return cls(root, read_manifest(root))

    def refresh(self) -> bool:
        """Re-read the manifest; True if another writer committed a new generation."""
        manifest = read_manifest(self.root)
        if manifest != self._manifest:
            if manifest.get("segments") != self._manifest.get("segments") or manifest.get(
                "derived"
            ) != self._manifest.get("derived"):
                self._snapshot = None
            self._manifest = manifest
            self.router_cache = {}
            return True
        return False

    # ------------------------------------------------------------------ properties
    @property
    def manifest(self) -> Manifest:
        """The committed manifest this handle reads."""
        return self._manifest

    @property
    def levels(self) -> list[int]:
        """Level sizes in tokens, finest first."""
        return list(self._manifest["levels"])

    @property
    def embedder(self) -> Embedder:
        """The embedder the index was built with (loaded on first use)."""
        if self._embedder is None:
            spec = self._manifest["embedder"]["spec"]
            emb = shared_embedder(None if spec == "minilm" else spec)
            if emb.name != self._manifest["embedder"]["name"]:
                raise IndexFormatError(
                    f"index {self.root} was built with embedder "
                    f"{self._manifest['embedder']['name']!r} but {emb.name!r} loaded; "
                    "install the same model or rebuild"
                )
            self._embedder = emb
        return self._embedder

    @property
    def snapshot(self) -> Snapshot:
        """The committed generation, loaded on first use."""
        if self._snapshot is None:
            self._snapshot = self._open_snapshot()
        return self._snapshot

    def _open_snapshot(self) -> Snapshot:
        """Open the generation this handle's manifest names -- or the newest one, if a
        writer committed and collected that generation between reading the manifest and
        opening its files. Writers never wait for readers: once a reader has opened a
        generation, its mapped files stay readable after they are unlinked (POSIX), so
        only this short window between the two reads can miss files, and it is retried.
        An error is raised only if files of the newest generation are unreadable."""
        for _ in range(OPEN_ATTEMPTS - 1):
            try:
                return self._new_snapshot()
            except IndexFormatError:
                newest = read_manifest(self.root)
                if newest.get("generation") == self._manifest.get("generation") and \
                        newest.get("segments") == self._manifest.get("segments") and \
                        newest.get("derived") == self._manifest.get("derived"):
                    raise  # nothing was collected: the index itself is damaged
                self._manifest = newest
                self.router_cache = {}
        return self._new_snapshot()

    def level_index(self, size: int) -> int:
        """Position of a level given by its size in tokens."""
        if size not in self.levels:
            raise MogragError(
                f"no level {size} in this index; levels are {', '.join(map(str, self.levels))}"
            )
        return self.levels.index(size)
    @property
    def backend(self) -> SearchBackend:
        """The search backend serving the committed snapshot."""
        snap = self.snapshot
        if self._backend is None or self._backend.snapshot is not snap:
            self._backend = open_backend(self._manifest, snap)
        return self._backend

    def info(self) -> dict[str, Any]:
        """Counts and settings (the ``mograg info --json`` contract)."""
        snap = self.snapshot
        n_bytes = 0
        for dirpath, _dirs, files in os.walk(self.root):  # walk errors are ignored
            for name in files:
                with contextlib.suppress(OSError):  # a writer may collect it meanwhile
                    n_bytes += os.stat(os.path.join(dirpath, name)).st_size
        return {
            "path": str(self.root),
            "levels": self.levels,
            "documents": snap.n_docs,
            "chunks": sum(snap.n_chunks(j) for j in range(len(self.levels))),
            "chunks_per_level": {str(s): snap.n_chunks(j) for j, s in enumerate(self.levels)},
            "sentences": len(snap.atoms),
            "bytes": n_bytes,
            "corpus_bytes": int(sum(s.text_offsets[-1] for s in snap.segments)),
            "embedder": self._manifest["embedder"]["name"],
            "dim": self._manifest["dim"],
            "vector_dtype": self._manifest["vector_dtype"],
            "level_vectors": self._manifest["level_vectors"],
            "generation": self._manifest["generation"],
            "routers": sorted(self._manifest.get("routers", {})),
            "default_router": self._manifest.get("default_router") or "entropy",
            "search_router": describe_search_router(self),
            "sources": describe_sources(snap),
            "graph": self._manifest.get("graph_stats") if self._manifest.get("graph") else None,
            "store": self._manifest.get("store"),
            "ann": self._manifest.get("ann"),
        }

    # ------------------------------------------------------------------ writes
    def add(self, documents: Iterable[Document], progress: Progress | None = None) -> WriteReport:
        """Add documents (replacing any with the same id) and commit a new generation."""
        progress = progress or no_progress
        t0 = time.perf_counter()
        docs = list(documents)
        seen: dict[str, int] = {}
        for i, d in enumerate(docs):
            seen[d.id] = i
        docs = [d for i, d in enumerate(docs) if seen[d.id] == i]  # last one wins
        with self._writing():
            report = WriteReport()
            builder = SegmentBuilder(self._manifest, self.embedder,
                                     lambda keys: existing_vectors(self.snapshot, keys))
            segment = builder.build(docs, report, progress)
            ids = {d.id for d in docs}
            report.replaced = sum(1 for d in self.snapshot.doc_ids if d in ids)
            report.added = len(docs) - report.replaced
            self._commit(segment, remove=ids, progress=progress)
        report.seconds = time.perf_counter() - t0
        return report

    def commit_segment(self, segment: SegmentData, progress: Progress | None = None) -> int:
        """Commit a segment built elsewhere (see :class:`~mograg.index.segments.SegmentBuilder`),
        replacing documents with the same ids; returns how many it replaced."""
        ids = set(segment.doc_ids)
        with self._writing():
            replaced = sum(1 for d in self.snapshot.doc_ids if d in ids)
            self._commit(segment, remove=ids, progress=progress or no_progress)
        return replaced

    def stage_segment(self, segment: SegmentData) -> int:
        """Send a segment to the search store ahead of its commit (streaming ingestion)."""
        return open_backend(self._manifest).stage(segment)

    def delete(self, ids: Iterable[str], progress: Progress | None = None) -> WriteReport:
        """Delete documents by id and commit; unknown ids are listed in ``missing``."""
        progress = progress or no_progress
        wanted = list(dict.fromkeys(ids))
        with self._writing():
            present = set(self.snapshot.doc_ids)
            report = WriteReport(
                deleted=sum(1 for i in wanted if i in present),
                missing=[i for i in wanted if i not in present],
            )
            if report.deleted:
                self._commit(None, remove=set(wanted), progress=progress)
        return report

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the writer lock over the newest generation. The writer's snapshot reads
        whole-index tables, BM25 and graphs only if the write needs them (a small write to a
        large index does not), and reuses the segment readers this handle already has."""
        with writer_lock(self.root):
            self._manifest = read_manifest(self.root)
            self._snapshot = self._new_snapshot(eager=False)
            try:
                yield
            finally:
                self._snapshot = None  # readers open the committed generation in full

    def _new_snapshot(self, eager: bool = True) -> Snapshot:
        """A snapshot of this handle's manifest, reusing open readers of its segments."""
        snap = Snapshot(self.root, self._manifest, readers=self._readers, eager=eager)
        self._readers = dict(zip(self._manifest["segments"], snap.segments, strict=True))
        return snap

    def _commit(self, segment: SegmentData | None, remove: set[str], progress: Progress) -> None:
        """Write the next generation (:func:`mograg.index.commit.write_generation`)."""
        self._manifest, nxt = write_generation(self.root, self._manifest, self.snapshot,
                                               segment, remove, progress)
        self._readers = dict(zip(self._manifest["segments"], nxt.segments, strict=True))
        self._snapshot = None

    # ------------------------------------------------------------------ reads
    def encode_queries(self, queries: Sequence[str]) -> list[Query]:
        """Embed and tokenize queries once (batch) for repeated searches."""
        for q in queries:
            if has_lone_surrogate(q):
                raise MogragError(
                    "the query is not valid UTF-8 (undecodable bytes or a lone surrogate); "
                    "re-type it or fix the terminal's encoding"
                )
        vecs = (embed_queries(self.embedder, list(queries)) if queries
                else np.zeros((0, 1), np.float32))
        counts = count_tokens(list(queries))
        return [
            make_query(q, v, n) for q, v, n in zip(queries, vecs, counts, strict=True)
        ]

    def rank(
        self, query: Query, mode: Mode = "hybrid", n: int = DEFAULT_CANDIDATES,
        levels: Sequence[int] | None = None,
    ) -> list[LevelRanking]:
        """Ranked candidates of every level (or the given level positions), the dense
        similarities of all of them in one pass (:func:`mograg.retrieval.rank.rank_levels`)."""
        check_mode(mode)
        todo = range(len(self.levels)) if levels is None else levels
        return rank_levels(self.backend, list(todo), query, mode, n)

    def search(
        self,
        query: str | Query,
        budget: int = 256,
        level: int | None = None,
        mode: str = "hybrid",
        router: str | None = None,
        strategy: str = DEFAULT_STRATEGY,
        where: Sequence[str] | None = None,
    ) -> SearchResult:
        """Retrieve up to ``budget`` tokens for ``query``.

        Args:
            query: question text (or a prepared :class:`Query`).
            budget: token budget of the returned context.
            level: a level size (e.g. 128) to search one granularity only.
            mode: "hybrid" (dense + BM25 fused by RRF), "dense" or "bm25".
            router: router name, "shipped", "entropy", "rrf-levels", or one fixed
                granularity ("level:N", "graph:N:r=R"); default the index's trained
                router if any, else the shipped model (entropy for other levels).
                Ignored when ``level`` is given.
            strategy: "auto" (default: per-span selection where a span model serves the
                router, else blend), "spans", "blend", "argmax" or "mix".
            where: metadata conditions (``period~2023``, ``id^reports/``, see
                :mod:`mograg.retrieval.filters`); only matching documents are searched.
        """
        if budget < 1:
            raise MogragError(f"budget must be a positive number of tokens, got {budget}")
        mode = check_mode(mode)
        with one_blas_thread():
            return self._search(query, budget, level, mode, router, strategy, where)

    def _search(
        self, query: str | Query, budget: int, level: int | None, mode: Mode,
        router: str | None, strategy: str, where: Sequence[str] | None,
    ) -> SearchResult:
        q = query if isinstance(query, Query) else self.encode_queries([query])[0]
        if where:
            from dataclasses import replace

            from mograg.retrieval.filters import doc_mask, parse_where

            q = replace(q, docs=doc_mask(self.snapshot, parse_where(where)))
        if level is None and router is not None and router.startswith("level:"):
            try:
                level = int(router.split(":", 1)[1])
            except ValueError:
                raise MogragError(f"invalid router {router!r}; use level:SIZE") from None
        if level is not None:
            self.level_index(level)  # an unknown level is an error before any ranking
            return fixed_search(self, q, budget, mode, str(Granularity.level(level)))
        if router is not None and router.startswith("graph:"):
            return fixed_search(self, q, budget, mode, router)
        return route_search(self, q, budget=budget, mode=mode, router=router,
                            strategy=strategy)  # type: ignore[arg-type]
