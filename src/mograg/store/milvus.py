"""Milvus backend: per-level dense and BM25 search in Milvus (Lite or a cluster).

What lives where:

* The index directory keeps what it keeps today: documents (text stored once), sentence
  atoms, per-level chunk tables and the per-level vectors (memory-mapped; budget assembly
  and the MoGG graph read a few rows of them per query). It stays the source of truth.
* Milvus holds the *search* structures, one collection per level:
  ``key`` (INT64 primary key), ``doc_id``, ``start``/``end`` (character span), ``terms``
  (the chunk's BM25 terms, analyzer enabled) with a BM25 Function filling ``sparse``,
  and ``dense`` (FLOAT_VECTOR, inner product on L2-normalised vectors = cosine).

Chunk keys are content based and stable across add/delete/merge: ``key = mix(doc_hash,
level, start, end)`` where ``doc_hash`` is a 64-bit BLAKE2b of the document id and text.
A rewritten or merged segment keeps its keys (nothing is re-sent to Milvus); a document
re-added with the same text maps to the same keys (upsert is idempotent, so a crashed and
re-run ingestion never duplicates rows); a changed text gets new keys. Hits are mapped
back to the snapshot's chunk positions through a sorted key table; keys unknown to the
committed snapshot (rows of a write that crashed before its manifest swap) are ignored
and removed by :meth:`MilvusStore.reconcile`.

BM25 terms are mograg's own (``lexical.tokenize``: stopwords removed, Snowball stemmed),
joined by spaces, so Milvus's ``standard`` analyzer sees the same vocabulary as the
embedded store (Milvus Lite has no English stemming analyzer).

Wiring (applied in index.py / retrieve.py, see docs/scaling.md): ``new_store_config``
at ``Index.create``; :func:`before_commit` / :func:`after_commit` around the manifest
swap; :func:`rank_level_remote` in ``retrieve.rank_level`` when the manifest has a store.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mograg.errors import IndexFormatError, MogragError

STORE_KINDS = ("milvus-lite", "milvus")
KEY_MASK = np.uint64(0x7FFF_FFFF_FFFF_FFFF)
MAX_TERMS_CHARS = 60_000  # Milvus VARCHAR max_length is in bytes (65535); terms are ASCII-ish
MAX_DOC_ID = 1024
UPSERT_BATCH = 2000
DELETE_BATCH = 5000
OVERFETCH = 16  # extra hits asked of Milvus to make up for uncommitted (unknown) keys


# ----------------------------------------------------------------------------- config


def parse_store(spec: str | None) -> dict[str, Any] | None:
    """Parse a ``--store`` value into a store config (``None`` for the embedded store).

    Accepted: ``local``/empty, ``milvus-lite:PATH`` (a file-backed Milvus Lite database;
    ``.db`` is appended if missing), ``milvus://HOST:PORT`` (a Milvus server or cluster
    proxy; ``?index=HNSW`` picks the dense index type, default AUTOINDEX).
    """
    s = (spec or "").strip()
    if s in ("", "local", "embedded"):
        return None
    if s.startswith("milvus-lite:"):
        path = s.split(":", 1)[1]
        if not path:
            raise MogragError("give a path: --store milvus-lite:/path/to/index.db")
        p = Path(path).expanduser().resolve()
        if p.suffix != ".db":
            p = p.with_name(p.name + ".db")
        return {"kind": "milvus-lite", "uri": str(p), "index_type": "FLAT"}
    if s.startswith("milvus://"):
        rest = s[len("milvus://"):]
        rest, _, query = rest.partition("?")
        if not rest:
            raise MogragError("give a host: --store milvus://HOST:PORT")
        params = dict(kv.split("=", 1) for kv in query.split("&") if "=" in kv)
        hostport = rest if ":" in rest else f"{rest}:19530"
        return {
            "kind": "milvus",
            "uri": f"http://{hostport}",
            "index_type": params.get("index", "AUTOINDEX").upper(),
        }
    raise MogragError(
        f"unknown store {spec!r}; use local, milvus-lite:PATH or milvus://HOST:PORT"
    )


def new_store_config(spec: str | None) -> dict[str, Any] | None:
    """A store config for a new index: ``parse_store`` plus a unique collection prefix."""
    cfg = parse_store(spec)
    if cfg is not None:
        cfg["prefix"] = f"mograg_{uuid.uuid4().hex[:12]}"
        cfg["lexical"] = "milvus-bm25"
    return cfg


# ----------------------------------------------------------------------------- keys


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised over uint64 (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def doc_hash(doc_id: str, text: str) -> int:
    """64-bit content hash of a document (its id and text)."""
    h = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8)
    h.update(b"\0")
    h.update(text.encode("utf-8"))
    return int.from_bytes(h.digest(), "little")


def chunk_keys(
    doc_hashes: np.ndarray, atoms: np.ndarray, chunks: np.ndarray, level: int
) -> np.ndarray:
    """Stable int64 keys of ``chunks`` (CHUNK_DTYPE) of one level over ``atoms``."""
    if len(chunks) == 0:
        return np.zeros(0, np.int64)
    first = atoms[chunks["first_atom"]]
    last = atoms[chunks["last_atom"]]
    with np.errstate(over="ignore"):
        span = (
            first["start"].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            + last["end"].astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
            + np.uint64(level + 1)
        )
        mixed = _mix(doc_hashes[first["doc"]] ^ _mix(span))
    return (mixed & KEY_MASK).astype(np.int64)


_SEG_CACHE: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
_SEG_LOCK = threading.Lock()


def _segment_keys(seg: Any, n_levels: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(doc hashes, keys per level) of one on-disk segment, cached per process and beside
    the segment (``content-keys.npz``; segments are immutable, so the cache never goes stale).
    """
    path = str(seg.directory)
    with _SEG_LOCK:
        hit = _SEG_CACHE.get(path)
    if hit is not None:
        return hit
    side = Path(path) / "content-keys.npz"
    out: tuple[np.ndarray, list[np.ndarray]] | None = None
    if side.exists():
        try:
            with np.load(side) as z:
                out = (z["docs"], [z[f"l{j}"] for j in range(n_levels)])
        except (OSError, ValueError, KeyError):
            out = None
    if out is None:
        dh = np.array(
            [doc_hash(d, seg.text(i)) for i, d in enumerate(seg.doc_ids)], dtype=np.uint64
        )
        atoms = np.asarray(seg.atoms)
        keys = [chunk_keys(dh, atoms, np.asarray(seg.levels[j]), j) for j in range(n_levels)]
        out = (dh, keys)
        tmp = Path(path) / f".content-keys.{uuid.uuid4().hex}.npz"
        try:
            np.savez(tmp, docs=dh, **{f"l{j}": k for j, k in enumerate(keys)})
            os.replace(tmp, side)
        except OSError:  # read-only index: keep the in-memory copy only
            tmp.unlink(missing_ok=True)
    with _SEG_LOCK:
        if len(_SEG_CACHE) > 256:
            _SEG_CACHE.clear()
        _SEG_CACHE[path] = out
    return out


def segment_data_keys(data: Any, n_levels: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(doc hashes, keys per level) of an in-memory ``SegmentData``."""
    dh = np.array(
        [doc_hash(d, t) for d, t in zip(data.doc_ids, data.texts, strict=True)], dtype=np.uint64
    )
    keys = [chunk_keys(dh, data.atoms, data.levels[j], j) for j in range(n_levels)]
    return dh, keys


class KeyMap:
    """Chunk keys of one snapshot: key -> global chunk position per level."""

    def __init__(self, snap: Any) -> None:
        n_levels = len(snap.sizes)
        per_seg = [_segment_keys(s, n_levels) for s in snap.segments]
        self.doc_hashes = (
            np.concatenate([p[0] for p in per_seg]) if per_seg else np.zeros(0, np.uint64)
        )
        self.keys: list[np.ndarray] = []
        self._sorted: list[np.ndarray] = []
        self._order: list[np.ndarray] = []
        for j in range(n_levels):
            k = np.concatenate([p[1][j] for p in per_seg]) if per_seg else np.zeros(0, np.int64)
            order = np.argsort(k, kind="stable")
            sk = k[order]
            if len(sk) > 1 and bool((sk[1:] == sk[:-1]).any()):
                raise IndexFormatError(
                    f"duplicate chunk keys at level {j} (a repeated document or a 64-bit "
                    "hash collision); rebuild the index"
                )
            self.keys.append(k)
            self._sorted.append(sk)
            self._order.append(order)

    def positions(self, j: int, keys: np.ndarray) -> np.ndarray:
        """Chunk positions of ``keys`` at level ``j``; -1 where the key is unknown."""
        sk = self._sorted[j]
        keys = np.asarray(keys, np.int64)
        if len(sk) == 0:
            return np.full(len(keys), -1, np.int64)
        i = np.minimum(np.searchsorted(sk, keys), len(sk) - 1)
        found = sk[i] == keys
        return np.where(found, self._order[j][i], -1).astype(np.int64)

    def committed_docs(self, doc_ids: Sequence[str]) -> dict[str, int]:
        """``doc_id -> doc hash`` of the snapshot's documents."""
        return dict(zip(doc_ids, self.doc_hashes.tolist(), strict=True))


_KEYMAPS: weakref.WeakKeyDictionary[Any, KeyMap] = weakref.WeakKeyDictionary()


def key_map(snap: Any) -> KeyMap:
    """The (cached) key map of a snapshot."""
    km = _KEYMAPS.get(snap)
    if km is None:
        km = KeyMap(snap)
        _KEYMAPS[snap] = km
    return km


# ----------------------------------------------------------------------------- client

_CLIENTS: dict[str, Any] = {}
_CLIENT_LOCK = threading.Lock()


def _import_pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError as exc:
        raise MogragError(
            "the Milvus store needs pymilvus: pip install 'mograg[milvus]' "
            "(pymilvus with milvus-lite)"
        ) from exc
    return pymilvus


def milvus_client(cfg: dict[str, Any]) -> Any:
    """One ``MilvusClient`` per URI per process (Milvus Lite allows one process per file)."""
    uri = cfg["uri"]
    with _CLIENT_LOCK:
        client = _CLIENTS.get(uri)
        if client is None:
            pm = _import_pymilvus()
            if cfg["kind"] == "milvus-lite":
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                client = pm.MilvusClient(uri=uri, token=os.environ.get("MILVUS_TOKEN", ""))
            except Exception as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                hint = (
                    " (Milvus Lite serves one process at a time: stop the other mograg "
                    "process using this file)" if "lock" in msg.lower() else ""
                )
                raise MogragError(f"cannot open Milvus at {uri}: {msg}{hint}") from exc
            _CLIENTS[uri] = client
        return client


def close_clients() -> None:
    """Close every cached client (tests; Milvus Lite releases its file lock at exit too)."""
    with _CLIENT_LOCK:
        for c in _CLIENTS.values():
            with contextlib.suppress(Exception):  # best effort
                c.close()
        _CLIENTS.clear()
    with contextlib.suppress(Exception):  # Milvus Lite keeps a server per file until exit
        from milvus_lite import server_manager_instance

        server_manager_instance.release_all()


class MilvusStore:
    """The Milvus side of one index: a collection per level."""

    def __init__(self, cfg: dict[str, Any], dim: int, n_levels: int) -> None:
        if cfg.get("kind") not in STORE_KINDS:
            raise IndexFormatError(f"unknown store kind {cfg.get('kind')!r}")
        self.cfg = cfg
        self.dim = int(dim)
        self.n_levels = int(n_levels)
        self._client: Any = None

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> MilvusStore:
        """The store named by an index manifest."""
        return cls(manifest["store"], manifest["dim"], len(manifest["levels"]))

    @property
    def client(self) -> Any:
        """The pymilvus client (connects on first use)."""
        if self._client is None:
            client = milvus_client(self.cfg)
            existing = set(client.list_collections())
            for j in range(self.n_levels):  # a reopened database starts "released"
                name = self.collection(j)
                if name in existing and "Loaded" not in str(
                    client.get_load_state(name).get("state", "")
                ):
                    client.load_collection(name)
            self._client = client
        return self._client

    def collection(self, j: int) -> str:
        """Collection name of level ``j``."""
        return f"{self.cfg['prefix']}_l{j}"

    # ------------------------------------------------------------------ schema
    def create(self) -> None:
        """Create the per-level collections (idempotent)."""
        pm = _import_pymilvus()
        dt = pm.DataType
        existing = set(self.client.list_collections())
        for j in range(self.n_levels):
            name = self.collection(j)
            if name in existing:
                continue
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", dt.INT64, is_primary=True)
            schema.add_field("doc_id", dt.VARCHAR, max_length=MAX_DOC_ID)
            schema.add_field("start", dt.INT64)
            schema.add_field("end", dt.INT64)
            schema.add_field(
                "terms", dt.VARCHAR, max_length=65535, enable_analyzer=True,
                analyzer_params={"tokenizer": "standard"},
            )
            schema.add_field("dense", dt.FLOAT_VECTOR, dim=self.dim)
            schema.add_field("sparse", dt.SPARSE_FLOAT_VECTOR)
            schema.add_function(pm.Function(
                name="bm25", function_type=pm.FunctionType.BM25,
                input_field_names=["terms"], output_field_names=["sparse"],
            ))
            params = self.client.prepare_index_params()
            itype = self.cfg.get("index_type", "FLAT")
            extra: dict[str, Any] = {}
            if itype == "HNSW":
                extra = {"params": {"M": 16, "efConstruction": 200}}
            params.add_index("dense", index_type=itype, metric_type="IP", **extra)
            params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            self.client.create_collection(name, schema=schema, index_params=params)

    def drop(self) -> None:
        """Drop every collection of this index."""
        existing = set(self.client.list_collections())
        for j in range(self.n_levels):
            if self.collection(j) in existing:
                self.client.drop_collection(self.collection(j))

    # ------------------------------------------------------------------ writes
    def upsert(
        self, j: int, keys: np.ndarray, doc_ids: Sequence[str], starts: np.ndarray,
        ends: np.ndarray, terms: Sequence[str], vectors: np.ndarray,
    ) -> int:
        """Insert or replace rows of level ``j`` (idempotent by key)."""
        vectors = np.asarray(vectors, np.float32)
        n = len(keys)
        for lo in range(0, n, UPSERT_BATCH):
            hi = min(n, lo + UPSERT_BATCH)
            rows = [
                {
                    "key": int(keys[i]), "doc_id": doc_ids[i][:MAX_DOC_ID],
                    "start": int(starts[i]), "end": int(ends[i]),
                    "terms": terms[i][:MAX_TERMS_CHARS], "dense": vectors[i].tolist(),
                }
                for i in range(lo, hi)
            ]
            self.client.upsert(self.collection(j), rows)
        return n

    def delete_keys(self, j: int, keys: np.ndarray) -> None:
        """Delete rows of level ``j`` by key."""
        keys = np.asarray(keys, np.int64)
        for lo in range(0, len(keys), DELETE_BATCH):
            self.client.delete(self.collection(j), ids=keys[lo : lo + DELETE_BATCH].tolist())

    def flush(self) -> None:
        """Make every write durable (before the manifest that names it is swapped in)."""
        for j in range(self.n_levels):
            self.client.flush(self.collection(j))

    def count(self, j: int) -> int:
        """Number of rows at level ``j``."""
        res = self.client.query(self.collection(j), filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def all_keys(self, j: int, batch: int = 10_000) -> np.ndarray:
        """Every key stored at level ``j`` (a full scan: for verification and repair)."""
        import logging

        log = logging.getLogger("pymilvus")
        level = log.level
        log.setLevel(logging.ERROR)  # Milvus Lite: "failed to get mvccTs" notice per scan
        try:
            it = self.client.query_iterator(
                self.collection(j), batch_size=batch, filter="key >= 0", output_fields=["key"]
            )
        finally:
            log.setLevel(level)
        out: list[int] = []
        try:
            while True:
                page = it.next()
                if not page:
                    break
                out.extend(int(r["key"]) for r in page)
        finally:
            it.close()
        return np.array(out, np.int64)

    def write_segment(self, data: Any, skip: dict[int, np.ndarray] | None = None) -> int:
        """Send an in-memory ``SegmentData`` (its vectors and BM25 terms) to Milvus,
        except the chunks whose keys are in ``skip[level]`` (already there)."""
        from mograg.store.lexical import tokenize

        _, keys = segment_data_keys(data, self.n_levels)
        sent = 0
        for j in range(self.n_levels):
            k = keys[j]
            mask = np.ones(len(k), bool)
            if skip is not None and j in skip and len(skip[j]):
                mask = ~np.isin(k, skip[j])
            if not mask.any():
                continue
            lv = data.levels[j][mask]
            first, last = data.atoms[lv["first_atom"]], data.atoms[lv["last_atom"]]
            docs = first["doc"].tolist()
            starts, ends = first["start"], last["end"]
            texts = [
                data.texts[d][s:e]
                for d, s, e in zip(docs, starts.tolist(), ends.tolist(), strict=True)
            ]
            terms = [" ".join(t) for t in tokenize(texts)]
            sent += self.upsert(
                j, k[mask], [data.doc_ids[d] for d in docs], starts, ends, terms,
                np.asarray(data.vectors[j])[mask],
            )
        return sent

    def reconcile(self, snap: Any) -> dict[str, int]:
        """Delete rows the committed snapshot does not name; report missing ones."""
        km = key_map(snap)
        out = {"orphans_deleted": 0, "missing": 0}
        for j in range(self.n_levels):
            stored = self.all_keys(j)
            pos = km.positions(j, stored)
            orphans = stored[pos < 0]
            if len(orphans):
                self.delete_keys(j, orphans)
            out["orphans_deleted"] += len(orphans)
            out["missing"] += int(len(km.keys[j]) - (pos >= 0).sum())
        return out

    # ------------------------------------------------------------------ reads
    def dense_top(self, j: int, qvec: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and inner-product scores of the ``n`` nearest rows of level ``j``."""
        res = self.client.search(
            self.collection(j), data=[np.asarray(qvec, np.float32).tolist()],
            anns_field="dense", limit=int(n), output_fields=[],
            search_params={"metric_type": "IP"},
        )
        return _unpack(res)

    def bm25_top(self, j: int, terms: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and BM25 scores of the ``n`` best rows of level ``j`` for ``terms``."""
        if not terms.strip():
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        res = self.client.search(
            self.collection(j), data=[terms], anns_field="sparse", limit=int(n),
            output_fields=[], search_params={"metric_type": "BM25"},
        )
        keys, scores = _unpack(res)
        # Milvus Lite reports BM25 as a negated distance, a cluster as a positive score
        return keys, np.abs(scores)


def _unpack(res: Any) -> tuple[np.ndarray, np.ndarray]:
    hits = list(res[0]) if res else []
    keys = np.array([int(h["key"] if "key" in h else h["id"]) for h in hits], np.int64)
    scores = np.array([float(h["distance"]) for h in hits], np.float32)
    return keys, scores


_STORES: dict[tuple[str, str], MilvusStore] = {}


def store_of(manifest: dict[str, Any]) -> MilvusStore:
    """The (cached) store of an index manifest."""
    cfg = manifest["store"]
    k = (cfg["uri"], cfg["prefix"])
    st = _STORES.get(k)
    if st is None:
        st = MilvusStore.from_manifest(manifest)
        _STORES[k] = st
    return st


# ----------------------------------------------------------------------------- search


class MilvusLevelSearch:
    """Search one level of a committed snapshot in Milvus; results are chunk positions."""

    def __init__(self, snap: Any, j: int) -> None:
        self.snap = snap
        self.j = j
        self.store = store_of(snap.manifest)
        self.keys = key_map(snap)

    def _known(self, keys: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
        pos = self.keys.positions(self.j, keys)
        ok = pos >= 0
        return pos[ok][:n], scores[ok][:n]

    def top(self, qvec: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``n`` chunks by cosine, re-scored exactly from the local vectors."""
        keys, _ = self.store.dense_top(self.j, qvec, n + OVERFETCH)
        ids, _ = self._known(keys, np.zeros(len(keys), np.float32), n + OVERFETCH)
        if len(ids) == 0:
            return ids, np.zeros(0, np.float32)
        scores = self.snap.chunk_vectors(self.j, ids) @ np.asarray(qvec, np.float32)
        order = np.lexsort((ids, -scores))[:n]
        return ids[order], scores[order].astype(np.float32)

    def bm25_top(self, terms: Sequence[str] | str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Best ``n`` chunks by BM25 for query terms (already tokenized, or raw text)."""
        if isinstance(terms, str):
            from mograg.store.lexical import tokenize

            terms = tokenize([terms])[0]
        keys, scores = self.store.bm25_top(self.j, " ".join(terms), n + OVERFETCH)
        return self._known(keys, scores, n)


_SEARCHES: weakref.WeakKeyDictionary[Any, list[MilvusLevelSearch]] = (
    weakref.WeakKeyDictionary()
)


def level_search(snap: Any, j: int) -> MilvusLevelSearch:
    """The (cached) searcher of level ``j`` of a snapshot."""
    lst = _SEARCHES.get(snap)
    if lst is None:
        lst = [MilvusLevelSearch(snap, i) for i in range(len(snap.sizes))]
        _SEARCHES[snap] = lst
    return lst[j]


def rank_level_remote(snap: Any, j: int, query: Any, mode: str, n: int) -> Any:
    """``retrieve.rank_level`` for a snapshot whose search structures live in Milvus.

    Same fusion as the embedded store (RRF over dense top-n and BM25 top-n, ties by
    dense similarity). Difference: the ``bm25`` feature of a candidate found by dense
    search only is 0 when it is outside the BM25 top-n (the embedded store has every
    chunk's BM25 score).
    """
    from mograg.retrieval.rank import RRF_K, LevelRanking

    if snap.n_chunks(j) == 0:
        return LevelRanking(j, np.zeros(0, np.int64), np.zeros(0, np.float32))
    search = level_search(snap, j)
    qv = np.asarray(query.vector, np.float32)
    if mode == "dense":
        ids, scores = search.top(qv, n)
        return LevelRanking(j, ids, scores, dense=scores.copy(),
                            bm25=np.zeros(0, np.float32))
    b_ids, b_scores = search.bm25_top(query.terms, n)
    if mode == "bm25":
        dense = np.zeros(0, np.float32)
        return LevelRanking(j, b_ids, b_scores, dense=dense, bm25=b_scores.copy())
    d_ids, _ = search.top(qv, n)
    fused: dict[int, float] = {}
    for r, i in enumerate(d_ids.tolist()):
        fused[i] = 1.0 / (RRF_K + r + 1)
    bm: dict[int, float] = {}
    for r, (i, s) in enumerate(zip(b_ids.tolist(), b_scores.tolist(), strict=True)):
        if s > 0:
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + r + 1)
            bm[i] = s
    cand = np.fromiter(fused.keys(), dtype=np.int64, count=len(fused))
    vals = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
    dense_c = snap.chunk_vectors(j, cand) @ qv if len(cand) else np.zeros(0, np.float32)
    order = np.lexsort((-dense_c, -vals))[:n]
    ids = cand[order]
    return LevelRanking(
        level=j, ids=ids.astype(np.int64), scores=vals[order].astype(np.float32),
        dense=np.asarray(dense_c[order], np.float32),
        bm25=np.array([bm.get(int(i), 0.0) for i in ids.tolist()], np.float32),
    )


# ----------------------------------------------------------------------------- commit hooks

# keys already sent to Milvus by the streaming ingester, per (uri, prefix) and level
_STAGED: dict[tuple[str, str], dict[int, set[int]]] = {}


def _staged(manifest: dict[str, Any]) -> dict[int, set[int]]:
    cfg = manifest["store"]
    return _STAGED.setdefault((cfg["uri"], cfg["prefix"]), {})


def stage_segment(manifest: dict[str, Any], data: Any) -> int:
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


def before_commit(old: Any, new: Any) -> dict[str, int]:
    """Send the chunks of segments new in ``new`` to Milvus and flush; call before the
    manifest swap (a crash after this leaves only rows the old manifest ignores)."""
    store = store_of(new.manifest)
    n_levels = store.n_levels
    old_names = {Path(s.directory).name for s in old.segments}
    new_names = {Path(s.directory).name for s in new.segments}
    gone = [s for s in old.segments if Path(s.directory).name not in new_names]
    gone_keys = [
        np.concatenate([_segment_keys(s, n_levels)[1][j] for s in gone])
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


def after_commit(old: Any, new: Any) -> dict[str, int]:
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
            g = np.concatenate([_segment_keys(s, n_levels)[1][j] for s in gone])
            keep = (np.concatenate([_segment_keys(s, n_levels)[1][j] for s in fresh])
                    if fresh else np.zeros(0, np.int64))
            drop = np.setdiff1d(g, keep)
            if len(drop):
                store.delete_keys(j, drop)
                deleted += len(drop)
    staged = _staged(new.manifest)
    if any(staged.values()):
        for seg in new.segments:
            for j, k in enumerate(_segment_keys(seg, n_levels)[1]):
                if staged.get(j):
                    staged[j].difference_update(k.tolist())
    return {"deleted": deleted}


# ----------------------------------------------------------------------------- bridge


def attach_store(path: str | Path, store: str) -> Any:
    """Move the search structures of an existing embedded index into Milvus.

    Nothing is re-embedded: every segment's stored vectors and BM25 terms are sent to new
    collections, flushed, and only then is the manifest (with its ``store``) swapped in.
    """
    from mograg.store.storage import MANIFEST, atomic_write_json, read_manifest, writer_lock

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
        from mograg.store.snapshot import Snapshot

        for seg in Snapshot(root, manifest).segments:
            st.write_segment(seg.load())
        st.flush()
        manifest["generation"] = int(manifest["generation"]) + 1
        atomic_write_json(root / MANIFEST, manifest)
    from mograg.index.core import Index

    return Index.open(root)
