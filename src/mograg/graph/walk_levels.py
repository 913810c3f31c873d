"""Every level's graph granularity in one walk: :func:`~mograg.graph.walk.graph_picks` of
all levels at once.

A routed search expands each level's ranking through the graph (``graph:<size>:r=1``
for five sizes). Each expansion is small (~30 seeds, ~25 chunks lifted) and costs a few
dozen array operations whatever its size; walked together, with the seeds of all
levels numbered one after the other, the same operations run once. The picks are those
of each level's own walk: seeds of different levels never share a group, and every
sort keeps each level's seeds apart and in their order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mograg.graph.walk import first_met, lift_seeds_flat, load_graph, named_seeds
from mograg.store.query_sims import query_sims
from mograg.types import LevelRanking, Pick, Query

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot


def graph_picks_levels(
    snap: Snapshot, query: Query, rankings: Sequence[LevelRanking], radius: int,
    named: Sequence[list[int]] | None = None, limits: Sequence[int | None] | None = None,
) -> list[list[Pick]]:
    """``graph_picks(snap, query, rankings[j], radius, named[j], limits[j])`` for every
    level ``j`` (``named``: each level's named seeds when the caller has them;
    ``limits``: each level's number of picks, None for all)."""
    graph = load_graph(snap)
    n_lv = len(rankings)
    limits = list(limits) if limits is not None else [None] * n_lv
    seed_parts, score_parts, n_named = [], [], []
    for j, ranking in enumerate(rankings):
        own = named[j] if named is not None else named_seeds(snap, graph, query, ranking.level)
        top = float(ranking.scores.max()) if len(ranking.scores) else 1.0
        limit = limits[j]
        # every seed is placed by its turn: the first ``limit`` picks need no later seed
        # than the ``limit``-th distinct one (a named seed may be ranked too)
        cut = None if limit is None else len(own) + limit
        ranked = ranking.ids.astype(np.int64, copy=False)
        scores = ranking.scores.astype(np.float64)
        seed_parts.append((np.concatenate([np.asarray(own, np.int64), ranked]) if own
                           else ranked)[:cut])
        score_parts.append((np.concatenate([np.full(len(own), top), scores]) if own
                            else scores)[:cut])
        n_named.append(len(own))
    counts = np.array([len(s) for s in seed_parts], np.int64)
    first_seed = np.zeros(n_lv + 1, np.int64)  # level j's seeds: first_seed[j]:first_seed[j+1]
    np.cumsum(counts, out=first_seed[1:])
    n_seeds = int(first_seed[-1])
    if not n_seeds:
        return [[] for _ in rankings]
    seed_ids = np.concatenate(seed_parts)
    seed_scores = np.concatenate(score_parts)
    seed_level = np.repeat(np.arange(n_lv), counts)
    owner, cand, weight = _lift_levels(snap, rankings, seed_parts, first_seed, radius)
    # each level's lifted chunks (owners are grouped by level) and their similarities
    lifted_at = np.searchsorted(owner, first_seed)
    sim = np.empty(len(cand), np.float32)
    for j, ranking in enumerate(rankings):
        a, b = int(lifted_at[j]), int(lifted_at[j + 1])
        if a < b:
            sim[a:b] = query_sims(snap, query.vector, [ranking]).of(
                ranking.level, cand[a:b], rowwise=True)
    after = np.lexsort((-sim, -weight, owner))
    by = owner[after]  # non-decreasing
    # each seed, then what it lifted, then the next seed (as graph_picks places them)
    seed_at = np.arange(n_seeds) + np.searchsorted(by, np.arange(n_seeds))
    lift_at = np.arange(len(after)) + by + 1
    total = n_seeds + len(after)
    chunk = np.empty(total, np.int64)
    chunk[seed_at], chunk[lift_at] = seed_ids, cand[after]
    score = np.empty(total, np.float64)
    score[seed_at], score[lift_at] = seed_scores, seed_scores[by] * weight[after]
    linked = np.ones(total, bool)
    linked[seed_at] = (np.arange(n_seeds) - first_seed[seed_level]) < np.asarray(n_named)[
        seed_level]
    level = np.empty(total, np.int64)
    level[seed_at], level[lift_at] = seed_level, seed_level[by]
    # each level's first occurrences, in order (levels follow each other in the sequence)
    _, first = np.unique(level * (int(chunk.max()) + 1) + chunk, return_index=True)
    keep = np.sort(first)
    bounds = np.searchsorted(level[keep], np.arange(n_lv + 1))
    out = []
    for j, ranking in enumerate(rankings):
        mine = keep[bounds[j]:bounds[j + 1]][:limits[j]]
        out.append([Pick(ranking.level, c, s, lk) for c, s, lk in zip(
            chunk[mine].tolist(), score[mine].tolist(), linked[mine].tolist(), strict=True)])
    return out


def _lift_levels(
    snap: Snapshot, rankings: Sequence[LevelRanking], seed_parts: Sequence[np.ndarray],
    first_seed: np.ndarray, radius: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`~mograg.graph.walk.lift_seeds_flat` of each level's seeds, owners numbered
    across levels (one hop, the common case, for all levels at once)."""
    adj = load_graph(snap).adj
    if radius != 1:
        parts = [lift_seeds_flat(snap.ancestors[r.level], adj, seeds, radius)
                 for r, seeds in zip(rankings, seed_parts, strict=True)]
        return (np.concatenate([o + first_seed[j] for j, (o, _, _) in enumerate(parts)]),
                np.concatenate([c for _, c, _ in parts]),
                np.concatenate([w for _, _, w in parts]))
    bounds = [snap.finest_bounds(r.level) for r in rankings]
    los = np.concatenate([b[s] for b, s in zip(bounds, seed_parts, strict=True)])
    his = np.concatenate([b[s + 1] for b, s in zip(bounds, seed_parts, strict=True)])
    # one hop from every seed of every level: a seed's out-edges are one contiguous slice
    e_lo = np.asarray(adj.indptr[los], np.int64)
    lens = np.asarray(adj.indptr[his], np.int64) - e_lo
    starts = np.zeros(len(los) + 1, np.int64)
    np.cumsum(lens, out=starts[1:])
    none = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    if not starts[-1]:  # no seed links anywhere
        return none
    edge = np.repeat(e_lo - starts[:-1], lens) + np.arange(starts[-1])
    owner = np.repeat(np.arange(len(los)), lens)
    v = np.asarray(adj.indices[edge], np.int64)
    w = np.asarray(adj.data[edge], np.float64)
    keep = ((v < los[owner]) | (v >= his[owner])) & (w > 0)  # reached, not a source
    owner, v, w = owner[keep], v[keep], w[keep]
    if not len(v):
        return none
    a = np.empty(len(v), np.int64)  # the reached finest chunk's chunk at the seed's level
    at = np.searchsorted(owner, first_seed).tolist()
    for j, r in enumerate(rankings):
        a[at[j]:at[j + 1]] = snap.ancestors[r.level][v[at[j]:at[j + 1]]]
    return first_met(owner, a, w, snap.n_chunks(0) + 1)
