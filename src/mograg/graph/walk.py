"""Walking the MoGG graph: a ``graph:<size>:r=<r>`` granularity's ordered candidates.

Granularity ``graph:<size>:r=<r>`` starts from the documents the question names by
title and from the ranked chunks of level ``<size>``, and follows each by the
level-``<size>`` chunks holding what its finest chunks reach in up to ``r`` hops
(best path weight first, then similarity to the query).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from mograg.errors import IndexFormatError
from mograg.graph.titles import title_matcher
from mograg.store.manifest import Manifest
from mograg.types import LevelRanking, Pick, Query

if TYPE_CHECKING:
    from mograg.store.adjacency import Adjacency
    from mograg.store.graph_files import Graph
    from mograg.store.snapshot import Snapshot


def graph_radii(manifest: Manifest) -> list[int]:
    """Hop radii offered as granularities (empty when the index has no graph).

    Radius 0 would be the level itself, so radii start at 1.
    """
    graph = manifest.get("graph")
    if not graph or not manifest.get("derived", {}).get("graph"):
        return []
    return list(range(1, int(graph.get("max_radius", 1)) + 1))


def load_graph(snap: Snapshot) -> Graph:
    """The graph of a committed generation."""
    graph = snap.graph
    if graph is None:
        raise IndexFormatError(f"index {snap.root} has no graph; build it with --graph")
    return graph


def reach(adj: Adjacency, sources: Iterable[int], radius: int) -> dict[int, float]:
    """Nodes within ``radius`` hops of ``sources`` (sources excluded), best path weight.

    A path's weight is the product of its edge weights; each node keeps its best.
    """
    indptr, indices, data = adj.indptr, adj.indices, adj.data
    best = {int(s): 1.0 for s in sources}
    start = set(best)
    frontier = dict(best)
    for _ in range(radius):
        nxt: dict[int, float] = {}
        for u, su in frontier.items():
            for p in range(indptr[u], indptr[u + 1]):
                v, sv = int(indices[p]), su * float(data[p])
                if sv > best.get(v, 0.0) and sv > nxt.get(v, 0.0):
                    nxt[v] = sv
        best.update(nxt)
        frontier = nxt
    return {v: w for v, w in best.items() if v not in start}


def named_seeds(snap: Snapshot, graph: Graph, query: Query, j: int) -> list[int]:
    """Level-``j`` chunks of the documents the question names by title.

    From each named document, its chunk most similar to the question; best first.
    The question is linked like a chunk: "Who directed Kiss and Tell?" starts from
    *Kiss and Tell* even when its text ranks low. A question without any capital
    letter ("who directed kiss and tell") is matched ignoring case.
    """
    if not len(graph.targets):
        return []
    # a question typed without capitals carries no case: match titles ignoring it
    docs = title_matcher(snap, graph).find(query.text, ignore_case=query.text == query.text.lower())
    if not docs:
        return []
    bounds = snap.doc_bounds(j)
    best: list[tuple[float, int]] = []
    for d in docs:
        own = np.arange(bounds[d], bounds[d + 1], dtype=np.int64)
        if len(own):
            sims = snap.chunk_vectors(j, own) @ query.vector
            k = int(np.argmax(sims))
            best.append((float(sims[k]), int(own[k])))
    return [c for _, c in sorted(best, key=lambda t: -t[0])]


def graph_picks(snap: Snapshot, query: Query, ranking: LevelRanking, radius: int) -> list[Pick]:
    """Candidates of ``graph:<size>:r=<radius>``: seeds, each followed by what it links to.

    Seeds are the chunks of the documents the question names by title, then the
    level's ranking. The finest chunks a seed reaches in up to ``radius`` hops are
    lifted to the seed's level; they follow it best path first, then by similarity to
    the query. Every chunk appears once.
    """
    graph = load_graph(snap)
    j = ranking.level
    anc = snap.ancestors[j]
    top = float(ranking.scores.max()) if len(ranking.scores) else 1.0
    named = named_seeds(snap, graph, query, j)
    seeds = [(c, top) for c in named]
    seeds += list(zip(ranking.ids.tolist(), ranking.scores.tolist(), strict=True))
    picks: list[Pick] = []
    placed: set[int] = set()
    for c, score in seeds:
        if c not in placed:
            placed.add(c)
            picks.append(Pick(j, c, score, linked=c in named))
        lo, hi = snap.finest_range(j, c)
        lifted: dict[int, float] = {}
        for v, w in reach(graph.adj, range(lo, hi), radius).items():
            a = int(anc[v])
            if a not in placed and w > lifted.get(a, 0.0):
                lifted[a] = w
        if not lifted:
            continue
        cand = np.fromiter(lifted.keys(), np.int64, len(lifted))
        weight = np.fromiter(lifted.values(), np.float64, len(lifted))
        sims = snap.chunk_vectors(j, cand) @ query.vector
        for i in np.lexsort((-sims, -weight)).tolist():
            placed.add(int(cand[i]))
            picks.append(Pick(j, int(cand[i]), score * float(weight[i]), linked=True))
    return picks
