"""Migrations of an existing index: moving its search structures into Milvus."""

from __future__ import annotations

from pathlib import Path

from mograg.errors import MogragError
from mograg.index.core import Index
from mograg.store.milvus import store_of
from mograg.store.milvus_config import new_store_config
from mograg.store.snapshot import Snapshot
from mograg.store.storage import MANIFEST, atomic_write_json, read_manifest, writer_lock


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
