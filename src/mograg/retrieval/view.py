"""What retrieval needs of an index: the structural type :class:`~mograg.index.core.Index`
satisfies, so that retrieval (below the index package) never imports it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mograg.store.manifest import Manifest

if TYPE_CHECKING:
    from mograg.store.backend import SearchBackend
    from mograg.store.snapshot import Snapshot
    from mograg.types import LevelRanking, Mode, Query


class IndexView(Protocol):
    """A committed index generation as retrieval and routers read it."""

    root: Path
    router_cache: dict[str, Any]  # routers loaded from this generation, by name

    @property
    def manifest(self) -> Manifest:
        """The committed manifest."""
        ...

    @property
    def levels(self) -> list[int]:
        """Level sizes in tokens, finest first."""
        ...

    @property
    def snapshot(self) -> Snapshot:
        """The committed generation's data."""
        ...

    @property
    def backend(self) -> SearchBackend:
        """The search backend serving the snapshot."""
        ...

    def level_index(self, size: int) -> int:
        """Position of the level of ``size`` tokens."""
        ...

    def rank(
        self, query: Query, mode: Mode = "hybrid", n: int = ...,
        levels: Sequence[int] | None = None,
    ) -> list[LevelRanking]:
        """Ranked candidates of every level (or the given level positions)."""
        ...

    def refresh(self) -> bool:
        """Re-read the manifest; True if a new generation was committed."""
        ...
