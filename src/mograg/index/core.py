"""The multi-granularity index: create, open, add, delete, search."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mograg.embed.embedders import Embedder, content_hash, embed_cached, make_embedder
from mograg.errors import IndexFormatError, MogragError
from mograg.graph.build import GraphSettings, build_and_save
from mograg.retrieval.rank import (
    DEFAULT_CANDIDATES,
    LevelRanking,
    Query,
    assemble,
    check_mode,
    make_query,
    picks_from_ranking,
    rank_level,
)
from mograg.store.lexical import is_current, mark_current, reuse_or_build
from mograg.store.snapshot import Snapshot
from mograg.store.storage import (
    FORMAT_VERSION,
    MANIFEST,
    SegmentData,
    atomic_write_json,
    check_writable,
    collect_garbage,
    concat_segments,
    new_name,
    read_manifest,
    writer_lock,
)
from mograg.text.levels import ATOM_DTYPE, DEFAULT_LEVELS, build_levels, parse_levels
from mograg.text.segment import split_with_counts
from mograg.text.tokens import count_tokens
from mograg.types import Document, SearchResult

Progress = Callable[[str, int, int], None]
LEVEL_VECTORS = ("embed", "pool")
MAX_SEGMENTS = 8
EMBED_BATCH = 512


_EMBEDDERS: dict[str | None, Embedder] = {}


def shared_embedder(spec: str | None) -> Embedder:
    """One embedder per spec per process (loading a model costs about a second)."""
    if spec not in _EMBEDDERS:
        _EMBEDDERS[spec] = make_embedder(spec)
    return _EMBEDDERS[spec]


def no_progress(stage: str, done: int, total: int) -> None:
    """A progress callback that ignores every report."""
    del stage, done, total


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


class Index:
    """An index directory holding every document at several granularities."""

    STORE_HOOKS = True  # commits call the external store's hooks (see mograg.store.milvus)

    def __init__(self, root: Path, manifest: dict[str, Any], embedder: Embedder | None = None):
        self.root = root
        self._manifest = manifest
        self._snapshot: Snapshot | None = None
        self._embedder = embedder
        self._router_cache: dict[str, Any] = {}

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
    ) -> Index:
        """Create an empty index at ``path`` (or open it if ``exist_ok`` and it exists)."""
        root = Path(path)
        if (root / MANIFEST).exists():
            if not exist_ok:
                raise MogragError(f"an index already exists at {root}; use Index.open")
            return cls.open(root)
        if root.exists() and root.is_file():
            raise MogragError(f"{root} is a file; give a directory path for the index")
        if root.exists() and any(p for p in root.iterdir() if p.name != ".lock"):
            raise MogragError(f"{root} exists and is not empty; give a new or empty directory")
        sizes = parse_levels(levels)
        if vector_dtype not in ("float32", "float16"):
            raise MogragError(f"invalid vector dtype {vector_dtype!r}; use float32 or float16")
        if level_vectors not in LEVEL_VECTORS:
            raise MogragError(f"invalid level_vectors {level_vectors!r}; use embed or pool")
        emb = shared_embedder(embedder)
        manifest = {
            "format": FORMAT_VERSION,
            "generation": 0,
            "levels": list(sizes),
            "embedder": {"spec": embedder or "minilm", "name": emb.name},
            "dim": int(emb.dim),
            "max_tokens": int(emb.max_tokens),
            "vector_dtype": vector_dtype,
            "level_vectors": level_vectors,
            "segments": [],
            "derived": {},
            "created": time.time(),
        }
        if store:
            from mograg.store.milvus import new_store_config

            store_cfg = new_store_config(store)
            if store_cfg is not None:
                manifest["store"] = store_cfg
        if graph:
            settings = graph if isinstance(graph, GraphSettings) else GraphSettings()
            manifest["graph"] = settings.to_dict()
        check_writable(root.parent if not root.exists() else root)
        with writer_lock(root):
            if manifest.get("store"):  # before anything is written: a failure leaves no dir
                from mograg.store.milvus import store_of

                store_of(manifest).create()
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
            self._router_cache = {}
            return True
        return False

    # ------------------------------------------------------------------ properties
    @property
    def manifest(self) -> dict[str, Any]:
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
            self._snapshot = Snapshot(self.root, self._manifest)
        return self._snapshot

    def level_index(self, size: int) -> int:
        """Position of a level given by its size in tokens."""
        if size not in self.levels:
            raise MogragError(
                f"no level {size} in this index; levels are {', '.join(map(str, self.levels))}"
            )
        return self.levels.index(size)

    def info(self) -> dict[str, Any]:
        """Counts and settings (the ``mograg info --json`` contract)."""
        snap = self.snapshot
        n_bytes = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
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
            "graph": self._manifest.get("graph_stats") if self._manifest.get("graph") else None,
            "store": self._manifest.get("store"),
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
        with writer_lock(self.root):
            self._manifest = read_manifest(self.root)
            self._snapshot = None
            report = WriteReport()
            segment = self._build_segment(docs, report, progress)
            ids = {d.id for d in docs}
            report.replaced = sum(1 for d in self.snapshot.doc_ids if d in ids)
            report.added = len(docs) - report.replaced
            self._commit(segment, remove=ids, progress=progress)
        report.seconds = time.perf_counter() - t0
        return report

    def delete(self, ids: Iterable[str], progress: Progress | None = None) -> WriteReport:
        """Delete documents by id and commit; unknown ids are listed in ``missing``."""
        progress = progress or no_progress
        wanted = list(dict.fromkeys(ids))
        with writer_lock(self.root):
            self._manifest = read_manifest(self.root)
            self._snapshot = None
            present = set(self.snapshot.doc_ids)
            report = WriteReport(
                deleted=sum(1 for i in wanted if i in present),
                missing=[i for i in wanted if i not in present],
            )
            if report.deleted:
                self._commit(None, remove=set(wanted), progress=progress)
        return report

    def upgrade(self, progress: Progress | None = None) -> None:
        """Commit the same documents again so derived data (BM25 postings, graph) is in
        this version's format; nothing is re-embedded."""
        with writer_lock(self.root):
            self._manifest = read_manifest(self.root)
            self._snapshot = None
            self._commit(None, remove=set(), progress=progress or no_progress)

    def _build_segment(
        self, docs: list[Document], report: WriteReport, progress: Progress
    ) -> SegmentData | None:
        if not docs:
            return None
        sizes = self.levels
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
        vectors, hashes = self._vectors(docs, atoms, levels, report, progress)
        return SegmentData(
            doc_ids=[d.id for d in docs],
            metadata=[dict(d.metadata) for d in docs],
            texts=[d.text for d in docs],
            atoms=atoms,
            levels=levels,
            vectors=vectors,
            hashes=hashes,
        )

    def _existing_vectors(self) -> dict[bytes, np.ndarray]:
        """Vectors already in the index, by content hash (only directly embedded ones)."""
        cache: dict[bytes, np.ndarray] = {}
        for seg in self.snapshot.segments:
            for j in range(len(self.levels)):
                hashes = seg.hashes(j)
                vecs = seg.vectors[j]
                nonzero = np.flatnonzero(hashes.any(axis=1))
                for i in nonzero.tolist():
                    cache[hashes[i].tobytes()] = vecs[i]
        return cache

    def _vectors(
        self,
        docs: list[Document],
        atoms: np.ndarray,
        levels: list[np.ndarray],
        report: WriteReport,
        progress: Progress,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        emb = self.embedder
        dtype = np.dtype(self._manifest["vector_dtype"])
        pool_all = self._manifest["level_vectors"] == "pool"
        max_tok = int(self._manifest["max_tokens"])
        cache = self._existing_vectors()
        salt = emb.name
        vectors: list[np.ndarray] = []
        hashes: list[np.ndarray] = []
        jobs: list[tuple[int, np.ndarray, list[str]]] = []
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
            jobs.append((j, idx, texts))
        total = sum(len(t) for _, _, t in jobs)
        done = 0
        before = len(cache)
        for j, idx, texts in jobs:
            lv = levels[j]
            vec = np.zeros((len(lv), emb.dim), dtype=np.float32)
            hsh = np.zeros((len(lv), 16), dtype=np.uint8)
            keys = [content_hash(t, salt) for t in texts]
            for b in range(0, len(texts), EMBED_BATCH):
                batch = texts[b : b + EMBED_BATCH]
                report.reused += sum(1 for key in keys[b : b + EMBED_BATCH] if key in cache)
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

    def _commit(self, segment: SegmentData | None, remove: set[str], progress: Progress) -> None:
        """Write the next generation: rewrite touched segments, rebuild BM25, swap manifest."""
        snap = self.snapshot
        names: list[str] = []
        rewritten: list[SegmentData] = []
        for seg, name in zip(snap.segments, self._manifest["segments"], strict=True):
            keep = np.array([d not in remove for d in seg.doc_ids], dtype=bool)
            if keep.all():
                names.append(name)
            elif keep.any():
                rewritten.append(seg.load().keep(keep))
        if segment is not None:
            rewritten.append(segment)
        if len(names) + len(rewritten) > MAX_SEGMENTS:
            # merge into one segment (vectors are copied, never recomputed) -- except an
            # unchanged segment holding at least half of the corpus, which stays as it is,
            # so a stream of small additions keeps merging small segments only
            kept = [(s, n) for s, n in zip(snap.segments, self._manifest["segments"],
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
            data.write(self.root / "segments" / name)
            names.append(name)
        manifest = dict(self._manifest)
        manifest["segments"] = names
        manifest["generation"] = int(manifest["generation"]) + 1
        manifest["updated"] = time.time()
        next_snap = Snapshot(self.root, {**manifest, "derived": {}})
        derived: dict[str, str] = {}
        if manifest.get("store"):
            # dense + BM25 search live in the store: send new chunks, flush, then swap
            from mograg.store.milvus import before_commit

            progress("store", 0, 1)
            before_commit(snap, next_snap)
            progress("store", 1, 1)
        else:
            derived["lexical"] = self._write_lexical(next_snap, names, progress)
        extra = self._derive_hook(next_snap, manifest, progress)
        derived.update(extra)
        manifest["derived"] = derived
        atomic_write_json(self.root / MANIFEST, manifest)
        self._manifest = manifest
        self._snapshot = None
        if manifest.get("store"):
            from mograg.store.milvus import after_commit

            after_commit(snap, self.snapshot)  # delete rows of chunks that left
        collect_garbage(self.root, manifest)

    def _write_lexical(self, next_snap: Snapshot, names: list[str], progress: Progress) -> str:
        """BM25 postings of the next generation: unchanged segments' are hard-linked from
        the current generation, only new or rewritten segments are tokenized."""
        target = self.root / "lexical" / new_name("bm25")
        target.mkdir(parents=True)
        current = self._manifest.get("derived", {}).get("lexical")
        previous = self.root / "lexical" / current if current else None
        if previous is not None and not is_current(previous):
            previous = None  # an older whole-corpus BM25: count every segment once
        n_levels = len(self.levels)
        for j in range(n_levels):
            progress("bm25", j, n_levels)
            lo = 0
            for name, seg in zip(names, next_snap.segments, strict=True):
                hi = lo + len(seg.levels[j])
                reuse_or_build(target, previous, name, j,
                               lambda j=j, lo=lo, hi=hi: next_snap.level_texts(j, lo, hi))
                lo = hi
        progress("bm25", n_levels, n_levels)
        mark_current(target)
        return target.name

    def _derive_hook(
        self, snap: Snapshot, manifest: dict[str, Any], progress: Progress
    ) -> dict[str, str]:
        """Build corpus-wide structures for the next generation: the MoGG graph if enabled."""
        if not manifest.get("graph"):
            return {}
        settings = GraphSettings.from_dict(manifest["graph"])
        name, stats = build_and_save(self.root, snap, settings, progress)
        manifest["graph_stats"] = stats
        return {"graph": name}

    def enable_graph(
        self, settings: GraphSettings | None = None, progress: Progress | None = None
    ) -> dict[str, Any]:
        """Add (or rebuild) the MoGG graph of an existing index from its stored vectors."""
        settings = settings or GraphSettings()
        with writer_lock(self.root):
            manifest = read_manifest(self.root)
            manifest["graph"] = settings.to_dict()
            self._manifest = manifest
            self._snapshot = None
            name, stats = build_and_save(self.root, self.snapshot, settings, progress)
            manifest = dict(manifest)
            manifest["derived"] = {**manifest.get("derived", {}), "graph": name}
            manifest["graph_stats"] = stats
            manifest["generation"] = int(manifest["generation"]) + 1
            atomic_write_json(self.root / MANIFEST, manifest)
            self._manifest = manifest
            self._snapshot = None
            collect_garbage(self.root, manifest)
        return stats

    # ------------------------------------------------------------------ reads
    def encode_queries(self, queries: Sequence[str]) -> list[Query]:
        """Embed and tokenize queries once (batch) for repeated searches."""
        vecs = self.embedder.embed(list(queries)) if queries else np.zeros((0, 1), np.float32)
        counts = count_tokens(list(queries))
        return [
            make_query(q, v, n) for q, v, n in zip(queries, vecs, counts, strict=True)
        ]

    def rank(
        self, query: Query, mode: str = "hybrid", n: int = DEFAULT_CANDIDATES,
        levels: Sequence[int] | None = None,
    ) -> list[LevelRanking]:
        """Ranked candidates of every level (or the given level positions)."""
        check_mode(mode)
        snap = self.snapshot
        todo = range(len(self.levels)) if levels is None else levels
        return [rank_level(snap, j, query, mode, n) for j in todo]

    def search(
        self,
        query: str | Query,
        budget: int = 256,
        level: int | None = None,
        mode: str = "hybrid",
        router: str | None = None,
        strategy: str = "blend",
    ) -> SearchResult:
        """Retrieve up to ``budget`` tokens for ``query``.

        Args:
            query: question text (or a prepared :class:`Query`).
            budget: token budget of the returned context.
            level: a level size (e.g. 128) to search one granularity only.
            mode: "hybrid" (dense + BM25 fused by RRF), "dense" or "bm25".
            router: router name, "entropy", or one fixed granularity ("level:N",
                "graph:N:r=R"); default the index's trained
                router if any, else "entropy". Ignored when ``level`` is given.
            strategy: how router weights are used: "blend" (default), "argmax" or "mix".
        """
        if budget < 1:
            raise MogragError(f"budget must be a positive number of tokens, got {budget}")
        check_mode(mode)
        q = query if isinstance(query, Query) else self.encode_queries([query])[0]
        if level is None and router is not None and router.startswith("level:"):
            try:
                level = int(router.split(":", 1)[1])
            except ValueError:
                raise MogragError(f"invalid router {router!r}; use level:SIZE") from None
        if level is None and router is not None and router.startswith("graph:"):
            return self._search_graph(q, budget, mode, router)
        if level is not None:
            j = self.level_index(level)
            ranking = rank_level(self.snapshot, j, q, mode)
            hits = assemble(self.snapshot, q, picks_from_ranking(ranking), budget)
            routing = {"router": f"level:{level}", "chosen": [level]}
            return SearchResult(query=q.text, hits=hits, budget=budget, routing=routing)
        from mograg.retrieval.routing import route_search

        return route_search(self, q, budget=budget, mode=mode, router=router, strategy=strategy)

    def _search_graph(self, q: Query, budget: int, mode: str, name: str) -> SearchResult:
        """One fixed graph granularity, e.g. ``graph:256:r=1``."""
        from mograg.graph.build import graph_picks, parse_graph_name
        from mograg.retrieval.routing import granularity_names

        known = [n for n in granularity_names(self) if n.startswith("graph:")]
        parsed = parse_graph_name(name)
        if parsed is None or name not in known:
            hint = ", ".join(known) if known else "none: build the graph with mograg index --graph"
            raise MogragError(f"unknown graph granularity {name!r}; this index has: {hint}")
        size, radius = parsed
        ranking = rank_level(self.snapshot, self.level_index(size), q, mode)
        hits = assemble(self.snapshot, q, graph_picks(self, q, ranking, radius), budget)
        routing = {"router": name, "chosen": [name]}
        return SearchResult(query=q.text, hits=hits, budget=budget, routing=routing)
