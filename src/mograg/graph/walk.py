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
from mograg.store.query_sims import query_sims
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
    docs = title_matcher(snap, graph).named_in_question(query.text)
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


def graph_picks(
    snap: Snapshot, query: Query, ranking: LevelRanking, radius: int,
    named: list[int] | None = None, limit: int | None = None,
) -> list[Pick]:
    """Candidates of ``graph:<size>:r=<radius>``: seeds, each followed by what it links to.

    Seeds are the chunks of the documents the question names by title (``named``, when
    the caller has :func:`named_seeds` already), then the level's ranking. The finest
    chunks a seed reaches in up to ``radius`` hops are lifted to the seed's level; they
    follow it best path first, then by similarity to the query. Every chunk appears
    once. ``limit``: only the first that many.
    """
    graph = load_graph(snap)
    j = ranking.level
    top = float(ranking.scores.max()) if len(ranking.scores) else 1.0
    if named is None:
        named = named_seeds(snap, graph, query, j)
    # every seed is placed by its turn: the first ``limit`` picks need no later seed
    # than the ``limit``-th distinct one (a named seed may be ranked too)
    cut = None if limit is None else len(named) + limit
    ranked = ranking.ids.astype(np.int64, copy=False)
    scores = ranking.scores.astype(np.float64)
    seed_ids = (np.concatenate([np.asarray(named, np.int64), ranked]) if named else ranked)[:cut]
    n_seeds = len(seed_ids)
    if not n_seeds:
        return []
    seed_scores = (np.concatenate([np.full(len(named), top), scores]) if named else scores)[:cut]
    owner, cand, weight = lift_seeds_flat(snap.ancestors[j], graph.adj, seed_ids, radius)
    # looked up in the ranking's similarities of the whole level when it has them; else
    # one vector read for all seeds, each row's product alone (einsum), so that a chunk's
    # similarity does not depend on how many seeds were walked (BLAS's matrix-vector
    # product rounds the last rows differently, which reorders equal texts)
    sim = query_sims(snap, query.vector, [ranking]).of(j, cand, rowwise=True)
    after = np.lexsort((-sim, -weight, owner))
    by = owner[after]  # non-decreasing
    # each seed, then what it lifted (best path first, then most similar), then the next
    # seed: seed i after the i seeds and the lifted of the seeds before it, a lifted chunk
    # after the seeds up to its own and the lifted before it
    seed_at = np.arange(n_seeds) + np.searchsorted(by, np.arange(n_seeds))
    lift_at = np.arange(len(after)) + by + 1
    chunk = np.empty(n_seeds + len(after), np.int64)
    chunk[seed_at], chunk[lift_at] = seed_ids, cand[after]
    score = np.empty(len(chunk), np.float64)
    score[seed_at], score[lift_at] = seed_scores, seed_scores[by] * weight[after]
    # named seeds come first: a ranked seed that is named too is never a first occurrence
    linked = np.ones(len(chunk), bool)
    linked[seed_at] = np.arange(n_seeds) < len(named)
    _, first = np.unique(chunk, return_index=True)
    keep = np.sort(first)[:limit]
    return [Pick(j, c, s, lk) for c, s, lk in zip(
        chunk[keep].tolist(), score[keep].tolist(), linked[keep].tolist(), strict=True)]


Lifted = tuple[np.ndarray, np.ndarray]  # level chunks and best path weights, first reached first


def lift_seeds(anc: np.ndarray, adj: Adjacency, seeds: list[int], radius: int) -> list[Lifted]:
    """For each seed (a chunk of the level whose chunk of each finest chunk is ``anc``):
    the level's chunks holding what its finest chunks reach in up to ``radius`` hops
    (sources excluded), each with its best path weight, in the order :func:`reach`
    meets them. One hop, the common case, is walked for all seeds at once."""
    owner, chunk, weight = lift_seeds_flat(anc, adj, np.asarray(seeds, np.int64), radius)
    bounds = np.searchsorted(owner, np.arange(len(seeds) + 1))
    return [(chunk[lo:hi], weight[lo:hi])
            for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]


def lift_seeds_flat(
    anc: np.ndarray, adj: Adjacency, seeds: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`lift_seeds` as three flat arrays, seed by seed: each lifted chunk's seed
    (its position in ``seeds``, non-decreasing), the chunk and its best path weight."""
    seeds_arr = np.asarray(seeds, np.int64)
    los = np.searchsorted(anc, seeds_arr, "left")
    his = np.searchsorted(anc, seeds_arr, "right")
    if radius != 1:
        each = [_lift(anc, reach(adj, range(lo, hi), radius))
                for lo, hi in zip(los.tolist(), his.tolist(), strict=True)]
        return (np.repeat(np.arange(len(seeds_arr)), [len(c) for c, _ in each]),
                np.concatenate([c for c, _ in each]) if each else np.zeros(0, np.int64),
                np.concatenate([w for _, w in each]) if each else np.zeros(0, np.float64))
    # one hop from every seed at once: a seed's out-edges are one contiguous slice
    e_lo = np.asarray(adj.indptr[los], np.int64)
    lens = np.asarray(adj.indptr[his], np.int64) - e_lo
    starts = np.zeros(len(seeds) + 1, np.int64)
    np.cumsum(lens, out=starts[1:])
    if not starts[-1]:  # no seed links anywhere
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    edge = np.repeat(e_lo - starts[:-1], lens) + np.arange(starts[-1])
    owner = np.repeat(np.arange(len(seeds)), lens)
    v = np.asarray(adj.indices[edge], np.int64)
    w = np.asarray(adj.data[edge], np.float64)
    keep = ((v < los[owner]) | (v >= his[owner])) & (w > 0)  # reached, not a source
    owner, a, w = owner[keep], anc[v[keep]], w[keep]
    if not len(a):
        return owner, a, w
    return first_met(owner, a, w, int(anc[-1]) + 1)


def first_met(owner: np.ndarray, a: np.ndarray, w: np.ndarray,
              n_chunks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (seed ``owner``, chunk ``a``) pair of a walk's edges once: where it is first
    met (edges are in walk order), with its best weight ``w``; chunks below ``n_chunks``."""
    key = owner * n_chunks + a
    by_key = np.argsort(key, kind="stable")  # a key's edges stay in walk order
    sorted_key = key[by_key]
    starts = np.flatnonzero(np.concatenate([[True], sorted_key[1:] != sorted_key[:-1]]))
    first = by_key[starts]
    best = np.maximum.reduceat(w[by_key], starts)
    order = np.argsort(first, kind="stable")  # first met first
    return owner[first[order]], a[first[order]], best[order]


def _lift(anc: np.ndarray, reached: dict[int, float]) -> Lifted:
    """Reached finest chunks lifted to their level-``j`` chunk (best weight, first met first)."""
    lifted: dict[int, float] = {}
    for v, w in reached.items():
        a = int(anc[v])
        if w > lifted.get(a, 0.0):
            lifted[a] = w
    return (np.fromiter(lifted.keys(), np.int64, len(lifted)),
            np.fromiter(lifted.values(), np.float64, len(lifted)))
