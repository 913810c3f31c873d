"""Opening the search backend an index manifest names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mograg.store.backend import SearchBackend
from mograg.store.local_backend import LocalBackend
from mograg.store.manifest import Manifest
from mograg.store.milvus_backend import MilvusBackend

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot


def open_backend(manifest: Manifest, snapshot: Snapshot | None = None) -> SearchBackend:
    """The search backend of an index manifest, serving ``snapshot`` (None: writes only)."""
    if manifest.get("store"):
        return MilvusBackend(manifest, snapshot)
    return LocalBackend(manifest, snapshot)
