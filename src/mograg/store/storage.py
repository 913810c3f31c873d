"""On-disk layout of an index: immutable segments plus an atomically swapped manifest.

Layout of an index directory::

    manifest.json            # written last: tmp file, fsync, rename, fsync dir
    segments/<name>/         # immutable once written
        documents.jsonl      # {"id", "metadata"} per document
        text.bin, text_offsets.npy   # UTF-8 texts, concatenated, and byte offsets
        atoms.npy            # sentences: (doc, start, end, n_tokens)
        level-<j>.npy        # chunks: (first_atom, last_atom, n_tokens, parent)
        vectors-<j>.npy      # (n_chunks, dim) float16/float32, L2-normalised
        hashes-<j>.npy       # (n_chunks, 16) content hashes, to reuse vectors on re-add
    lexical/<name>/<segment>/level-<j>/  # BM25 postings per segment (unchanged ones hard-linked)
    graph/<name>/               # optional MoGG graph over the finest level

A writer builds new segment/lexical directories beside the live ones and then
replaces the manifest in one rename, so a crash at any point leaves the previous
manifest and everything it names intact. Writers are serialised by a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from mograg.errors import IndexFormatError, MogragError
from mograg.store.manifest import Manifest
from mograg.text.levels import ATOM_DTYPE, CHUNK_DTYPE

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def fsync_dir(path: Path) -> None:
    """Flush a directory entry (after creating or renaming files in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_durable(path: Path, data: bytes) -> None:
    """Write a file and fsync it."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_npy(path: Path, array: np.ndarray) -> None:
    """Save an array as .npy and fsync it."""
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def fsync_tree(path: Path) -> None:
    """fsync every file and directory below ``path`` (for trees written by libraries)."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as JSON so readers see either the old or the new file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    write_bytes_durable(tmp, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))
    os.replace(tmp, path)
    fsync_dir(path.parent)


def new_name(prefix: str) -> str:
    """A fresh, unique directory name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class SegmentData:
    """One batch of documents with everything derived from them, in memory."""

    doc_ids: list[str]
    metadata: list[dict[str, Any]]
    texts: list[str]
    atoms: np.ndarray  # ATOM_DTYPE, doc = index into doc_ids
    levels: list[np.ndarray]  # CHUNK_DTYPE per level, atoms/parents segment-local
    vectors: list[np.ndarray]
    hashes: list[np.ndarray]

    @property
    def n_docs(self) -> int:
        """Number of documents."""
        return len(self.doc_ids)

    def write(self, directory: Path) -> None:
        """Write the segment into a new directory (fsynced; the caller renames nothing)."""
        directory.mkdir(parents=True)
        lines = [
            json.dumps({"id": i, "metadata": m}, ensure_ascii=False)
            for i, m in zip(self.doc_ids, self.metadata, strict=True)
        ]
        write_bytes_durable(directory / "documents.jsonl", ("\n".join(lines) + "\n").encode())
        encoded = [t.encode("utf-8") for t in self.texts]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(b) for b in encoded])
        write_bytes_durable(directory / "text.bin", b"".join(encoded))
        save_npy(directory / "text_offsets.npy", offsets)
        save_npy(directory / "atoms.npy", self.atoms)
        for j, (chunks, vecs, hashes) in enumerate(
            zip(self.levels, self.vectors, self.hashes, strict=True)
        ):
            save_npy(directory / f"level-{j}.npy", chunks)
            save_npy(directory / f"vectors-{j}.npy", vecs)
            save_npy(directory / f"hashes-{j}.npy", hashes)
        fsync_dir(directory)

    def keep(self, keep_doc: np.ndarray) -> SegmentData:
        """A copy restricted to the documents where ``keep_doc`` is True (no re-embedding)."""
        doc_map = np.cumsum(keep_doc) - 1
        atom_keep = keep_doc[self.atoms["doc"]]
        atom_map = np.cumsum(atom_keep) - 1
        atoms = self.atoms[atom_keep].copy()
        atoms["doc"] = doc_map[atoms["doc"]]
        levels, vectors, hashes = [], [], []
        chunk_keeps = [atom_keep[lv["first_atom"]] for lv in self.levels]
        for j, lv in enumerate(self.levels):
            ck = chunk_keeps[j]
            chunks = lv[ck].copy()
            chunks["first_atom"] = atom_map[chunks["first_atom"]]
            chunks["last_atom"] = atom_map[chunks["last_atom"]]
            if j + 1 < len(self.levels):
                parent_map = np.cumsum(chunk_keeps[j + 1]) - 1
                chunks["parent"] = parent_map[chunks["parent"]]
            levels.append(chunks)
            vectors.append(np.asarray(self.vectors[j])[ck])
            hashes.append(np.asarray(self.hashes[j])[ck])
        idx = np.flatnonzero(keep_doc).tolist()
        return SegmentData(
            doc_ids=[self.doc_ids[i] for i in idx],
            metadata=[self.metadata[i] for i in idx],
            texts=[self.texts[i] for i in idx],
            atoms=atoms,
            levels=levels,
            vectors=vectors,
            hashes=hashes,
        )


def concat_tables(
    parts: Sequence[tuple[np.ndarray, Sequence[np.ndarray], int]], n_levels: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Concatenate (atoms, level chunk arrays, n_docs) parts, shifting every reference."""
    atoms: list[np.ndarray] = []
    levels: list[list[np.ndarray]] = [[] for _ in range(n_levels)]
    doc_off = atom_off = 0
    chunk_off = [0] * n_levels
    for part_atoms, part_levels, n_docs in parts:
        a = np.array(part_atoms)
        a["doc"] += doc_off
        atoms.append(a)
        for j in range(n_levels):
            c = np.array(part_levels[j])
            c["first_atom"] += atom_off
            c["last_atom"] += atom_off
            if j + 1 < n_levels:
                c["parent"] += chunk_off[j + 1]
            levels[j].append(c)
        for j in range(n_levels):
            chunk_off[j] += len(part_levels[j])
        doc_off += n_docs
        atom_off += len(part_atoms)
    all_atoms = np.concatenate(atoms) if atoms else np.zeros(0, ATOM_DTYPE)
    return all_atoms, [np.concatenate(lv) if lv else np.zeros(0, CHUNK_DTYPE) for lv in levels]


def concat_segments(parts: Sequence[SegmentData]) -> SegmentData:
    """Merge segments into one (offsets shifted; vectors copied, never recomputed)."""
    n_levels = len(parts[0].levels)
    atoms, levels = concat_tables([(p.atoms, p.levels, p.n_docs) for p in parts], n_levels)
    levels_idx = range(n_levels)
    return SegmentData(
        doc_ids=[d for p in parts for d in p.doc_ids],
        metadata=[m for p in parts for m in p.metadata],
        texts=[t for p in parts for t in p.texts],
        atoms=atoms,
        levels=levels,
        vectors=[np.concatenate([np.asarray(p.vectors[j]) for p in parts]) for j in levels_idx],
        hashes=[np.concatenate([np.asarray(p.hashes[j]) for p in parts]) for j in levels_idx],
    )


class SegmentReader:
    """Read access to one segment on disk; arrays are memory-mapped."""

    def __init__(self, directory: Path, n_levels: int) -> None:
        self.directory = directory
        try:
            with open(directory / "documents.jsonl", encoding="utf-8") as f:
                lines = [line for line in f.read().split("\n") if line.strip()]
            # one parse of all lines: half the time of a parse per line (1M-chunk index)
            rows = json.loads("[" + ",".join(lines) + "]")
            self.doc_ids: list[str] = [r["id"] for r in rows]
            self.metadata: list[dict[str, Any]] = [r.get("metadata") or {} for r in rows]
            self.text_offsets = np.load(directory / "text_offsets.npy")
            self.atoms = np.load(directory / "atoms.npy", mmap_mode="r")
            self.levels = [
                np.load(directory / f"level-{j}.npy", mmap_mode="r") for j in range(n_levels)
            ]
            self.vectors = [
                np.load(directory / f"vectors-{j}.npy", mmap_mode="r") for j in range(n_levels)
            ]
            # mapped now, not on first use: a writer may delete this directory once a newer
            # generation is committed, and an open mapping keeps the file readable (POSIX);
            # inside the try, so a directory collected before it is opened is reported as
            # unreadable, which the reader answers by opening the newest generation
            size = int(self.text_offsets[-1]) if len(self.text_offsets) else 0
            self._text_map = (
                np.memmap(directory / "text.bin", dtype=np.uint8, mode="r") if size else None
            )
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFormatError(
                f"index segment {directory} is unreadable ({exc}); rebuild the index"
            ) from None

    def text(self, i: int) -> str:
        """The full text of local document ``i``."""
        if self._text_map is None:
            return ""
        a, b = int(self.text_offsets[i]), int(self.text_offsets[i + 1])
        return bytes(self._text_map[a:b]).decode("utf-8")

    def hashes(self, j: int) -> np.ndarray:
        """Content hashes of level ``j`` chunks."""
        return np.load(self.directory / f"hashes-{j}.npy", mmap_mode="r")

    def keep(self, keep_doc: np.ndarray) -> SegmentData:
        """The segment restricted to the documents where ``keep_doc`` is True (a delete's
        rewrite): read from the mapped files, so only the kept rows are copied to memory."""
        mapped = SegmentData(
            doc_ids=self.doc_ids,
            metadata=self.metadata,
            texts=[self.text(i) if k else "" for i, k in enumerate(keep_doc.tolist())],
            atoms=self.atoms,
            levels=list(self.levels),
            vectors=list(self.vectors),
            hashes=[self.hashes(j) for j in range(len(self.levels))],
        )
        return mapped.keep(keep_doc)

    def load(self) -> SegmentData:
        """The whole segment in memory (to rewrite or merge it)."""
        n = len(self.levels)
        return SegmentData(
            doc_ids=list(self.doc_ids),
            metadata=list(self.metadata),
            texts=[self.text(i) for i in range(len(self.doc_ids))],
            atoms=np.array(self.atoms),
            levels=[np.array(lv) for lv in self.levels],
            vectors=[np.array(v) for v in self.vectors],
            hashes=[np.array(self.hashes(j)) for j in range(n)],
        )


def read_manifest(root: Path) -> Manifest:
    """The current manifest of the index at ``root``."""
    path = root / MANIFEST
    if not path.exists():
        if not root.exists():
            raise IndexFormatError(
                f"no index at {root}; create one with: mograg index SOURCES --index {root}"
            )
        raise IndexFormatError(
            f"{root} is not a mograg index (no {MANIFEST}); point --index at an index directory"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        why = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise IndexFormatError(
            f"{path} is unreadable ({why}); the index is damaged: rebuild it"
        ) from None
    if not isinstance(manifest, dict) or "format" not in manifest:
        raise IndexFormatError(
            f"{path} is not a mograg manifest (a JSON {type(manifest).__name__} without "
            "'format'); point --index at a mograg index directory"
        )
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{root} has index format {manifest.get('format')!r}, this mograg reads "
            f"{FORMAT_VERSION}; rebuild the index"
        )
    problem = _manifest_problem(manifest)
    if problem:
        raise IndexFormatError(f"{path} is damaged ({problem}); rebuild the index")
    return cast(Manifest, manifest)


_MANIFEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "generation": int,
    "levels": list,
    "embedder": dict,
    "dim": int,
    "max_tokens": int,
    "vector_dtype": str,
    "level_vectors": str,
    "segments": list,
    "derived": dict,
}


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's fields, or None (checked once per open)."""
    for key, kind in _MANIFEST_TYPES.items():
        if not isinstance(manifest.get(key), kind):
            return f"field {key!r} missing or not a {getattr(kind, '__name__', kind)}"
    if not manifest["levels"] or not all(
        type(x) is int and x > 0 for x in manifest["levels"]
    ):
        return "field 'levels' must list positive integers"
    names = list(manifest["segments"]) + list(manifest["derived"].values())
    if not all(isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in names):
        return "a segment or derived name is not a plain directory name"
    if not isinstance(manifest["embedder"].get("spec"), str):
        return "field 'embedder' has no 'spec'"
    routers = manifest.get("routers", {})
    if not isinstance(routers, dict) or not all(
        isinstance(r, dict) and isinstance(r.get("file"), str) for r in routers.values()
    ):
        return "field 'routers' is not a map of router records"
    return None


@contextlib.contextmanager
def writer_lock(root: Path) -> Iterator[None]:
    """Serialise writers (processes and threads) on one index directory."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def collect_garbage(root: Path, manifest: Manifest) -> None:
    """Remove segment and derived directories and temp files the manifest no longer names.

    Called by writers under the lock; readers that still map old files keep them
    alive until they close (POSIX unlink semantics).
    """
    live = set(manifest.get("segments", []))
    seg_dir = root / "segments"
    if seg_dir.exists():
        for d in seg_dir.iterdir():
            if d.name not in live:
                shutil.rmtree(d, ignore_errors=True)
    for kind, live_name in manifest.get("derived", {}).items():
        kind_dir = root / kind
        if kind_dir.exists():
            for d in kind_dir.iterdir():
                if d.name != live_name:
                    shutil.rmtree(d, ignore_errors=True)
    for tmp in root.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def check_writable(root: Path) -> None:
    """Fail early with one line if the index directory cannot be written."""
    if root.exists() and not os.access(root, os.W_OK):
        raise MogragError(f"cannot write to {root}; check its permissions")
