"""Milvus store: per-level dense and BM25 search structures in Milvus (Lite or a cluster).

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

This module is the Milvus client side (connections, collections, rows);
:mod:`mograg.store.milvus_backend` is the search backend built on it, and
:mod:`mograg.store.content_keys` defines the keys.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mograg.errors import IndexFormatError, MogragError
from mograg.store.content_keys import key_map, segment_data_keys
from mograg.store.lexical import tokenize
from mograg.store.manifest import Manifest
from mograg.store.milvus_config import STORE_KINDS

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot
    from mograg.store.storage import SegmentData

MAX_TERMS_CHARS = 60_000  # Milvus VARCHAR max_length is in bytes (65535); terms are ASCII-ish
MAX_DOC_ID = 1024
UPSERT_BATCH = 2000
DELETE_BATCH = 5000


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
        self.context = False  # BM25 terms include each chunk's context line

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> MilvusStore:
        """The store named by an index manifest."""
        store = cls(manifest["store"], manifest["dim"], len(manifest["levels"]))
        store.context = bool(manifest.get("context"))
        return store

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
                    self._load(client, name)
            self._client = client
        return self._client

    def _load(self, client: Any, name: str) -> None:
        try:
            client.load_collection(name)
        except Exception as exc:  # pymilvus's MilvusException (pymilvus is optional)
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            hint = (
                "; a Milvus Lite file whose process was killed while it was writing can be "
                "left unreadable: restore the file from a backup, or remove it and the index "
                "directory and index again" if self.cfg["kind"] == "milvus-lite" else ""
            )
            raise MogragError(
                f"Milvus at {self.cfg['uri']} cannot load collection {name}: {msg}{hint}"
            ) from exc

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

    def write_segment(self, data: SegmentData, skip: dict[int, np.ndarray] | None = None) -> int:
        """Send an in-memory ``SegmentData`` (its vectors and BM25 terms) to Milvus,
        except the chunks whose keys are in ``skip[level]`` (already there)."""
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
            if self.context:
                from mograg.text.context import with_context

                texts = with_context(texts, docs, starts.tolist(),
                                     lambda d: data.texts[d], lambda d: data.metadata[d])
            terms = [" ".join(t) for t in tokenize(texts)]
            sent += self.upsert(
                j, k[mask], [data.doc_ids[d] for d in docs], starts, ends, terms,
                np.asarray(data.vectors[j])[mask],
            )
        return sent

    def reconcile(self, snap: Snapshot) -> dict[str, int]:
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
    def dense_top(
        self, j: int, qvec: np.ndarray, n: int, where: DocFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keys and inner-product scores of the ``n`` nearest rows of level ``j``
        (among the rows of the documents ``where`` allows, if given)."""
        res = self.client.search(
            self.collection(j), data=[np.asarray(qvec, np.float32).tolist()],
            anns_field="dense", limit=int(n), output_fields=[],
            search_params={"metric_type": "IP"}, **_filter_args(where),
        )
        return _unpack(res)

    def bm25_top(
        self, j: int, terms: str, n: int, where: DocFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keys and BM25 scores of the ``n`` best rows of level ``j`` for ``terms``
        (among the rows of the documents ``where`` allows, if given)."""
        if not terms.strip():
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        res = self.client.search(
            self.collection(j), data=[terms], anns_field="sparse", limit=int(n),
            output_fields=[], search_params={"metric_type": "BM25"}, **_filter_args(where),
        )
        keys, scores = _unpack(res)
        # Milvus Lite reports BM25 as a negated distance, a cluster as a positive score
        return keys, np.abs(scores)


@dataclass(frozen=True)
class DocFilter:
    """A ``--where`` filter as a Milvus boolean expression over the ``doc_id`` field.

    The conditions themselves are evaluated locally (``period`` reads the document text,
    which Milvus does not hold); Milvus gets the resulting document ids, or the excluded
    ids when those are fewer, as string literals (JSON-quoted: Milvus reads string literals
    with Go's unquoting, so quotes, backslashes and control characters are escaped).
    Expression templates (``filter_params``) would avoid the quoting, but Milvus Lite
    rejects them in searches.
    """

    expr: str

    @classmethod
    def of(cls, doc_ids: Sequence[str], allowed: np.ndarray) -> DocFilter | None:
        """The filter allowing ``doc_ids[d]`` where ``allowed[d]``; None if all are."""
        allowed = np.asarray(allowed, bool)
        if allowed.all():
            return None
        inside = 2 * int(allowed.sum()) <= len(allowed)
        pick = allowed if inside else ~allowed
        ids = sorted({doc_ids[d][:MAX_DOC_ID] for d in np.flatnonzero(pick).tolist()})
        listed = ", ".join(json.dumps(i, ensure_ascii=False) for i in ids)
        return cls(f"doc_id {'in' if inside else 'not in'} [{listed}]")


def _filter_args(where: DocFilter | None) -> dict[str, Any]:
    return {} if where is None else {"filter": where.expr}


def _unpack(res: Any) -> tuple[np.ndarray, np.ndarray]:
    hits = list(res[0]) if res else []
    keys = np.array([int(h["key"] if "key" in h else h["id"]) for h in hits], np.int64)
    scores = np.array([float(h["distance"]) for h in hits], np.float32)
    return keys, scores


_STORES: dict[tuple[str, str], MilvusStore] = {}


def store_of(manifest: Manifest) -> MilvusStore:
    """The (cached) store of an index manifest."""
    cfg = manifest["store"]
    k = (cfg["uri"], cfg["prefix"])
    st = _STORES.get(k)
    if st is None:
        st = MilvusStore.from_manifest(manifest)
        _STORES[k] = st
    return st

