"""Content keys: stable 64-bit keys of documents and chunks, from their text alone.

``key = mix(doc_hash, level, start, end)`` where ``doc_hash`` is a 64-bit BLAKE2b of the
document id and text. A rewritten or merged segment keeps its keys; a document re-added
with the same text maps to the same keys (so an external store's upsert is idempotent and
a re-run ingestion skips committed documents); a changed text gets new keys. The Milvus
store keys its rows by them; ingestion (with any store) uses the document hashes to resume.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mograg.errors import IndexFormatError

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot
    from mograg.store.storage import SegmentData, SegmentReader

KEY_MASK = np.uint64(0x7FFF_FFFF_FFFF_FFFF)
KEYS_FILE = "content-keys.npz"


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


def segment_keys(seg: SegmentReader, n_levels: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(doc hashes, keys per level) of one on-disk segment, cached per process and beside
    the segment (``content-keys.npz``; segments are immutable, so the cache never goes stale).
    """
    path = str(seg.directory)
    with _SEG_LOCK:
        hit = _SEG_CACHE.get(path)
    if hit is not None:
        return hit
    side = Path(path) / KEYS_FILE
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
            arrays: dict[str, Any] = {f"l{j}": k for j, k in enumerate(keys)}
            np.savez(tmp, docs=dh, **arrays)
            os.replace(tmp, side)
        except OSError:  # read-only index: keep the in-memory copy only
            tmp.unlink(missing_ok=True)
    with _SEG_LOCK:
        if len(_SEG_CACHE) > 256:
            _SEG_CACHE.clear()
        _SEG_CACHE[path] = out
    return out


def segment_data_keys(data: SegmentData, n_levels: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(doc hashes, keys per level) of an in-memory ``SegmentData``."""
    dh = np.array(
        [doc_hash(d, t) for d, t in zip(data.doc_ids, data.texts, strict=True)], dtype=np.uint64
    )
    keys = [chunk_keys(dh, data.atoms, data.levels[j], j) for j in range(n_levels)]
    return dh, keys


class KeyMap:
    """Chunk keys of one snapshot: key -> global chunk position per level."""

    def __init__(self, snap: Snapshot) -> None:
        n_levels = len(snap.sizes)
        per_seg = [segment_keys(s, n_levels) for s in snap.segments]
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


_KEYMAPS: weakref.WeakKeyDictionary[Snapshot, KeyMap] = weakref.WeakKeyDictionary()


def key_map(snap: Snapshot) -> KeyMap:
    """The (cached) key map of a snapshot."""
    km = _KEYMAPS.get(snap)
    if km is None:
        km = KeyMap(snap)
        _KEYMAPS[snap] = km
    return km

