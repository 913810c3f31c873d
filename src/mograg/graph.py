"""MoGG: a graph over the finest chunks; hop radius as a granularity."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mograg.index import Index


def graph_radii(index: Index) -> list[int]:
    """Hop radii offered as granularities (empty when the index has no graph)."""
    graph = index.manifest.get("graph")
    if not graph or not index.manifest.get("derived", {}).get("graph"):
        return []
    return list(range(int(graph.get("max_radius", 3)) + 1))
