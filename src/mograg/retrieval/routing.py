"""Using router weights: argmax, MoG tree mixing, or blending levels within one budget.

A *granularity* is anything that turns a query's per-level rankings into an ordered
list of candidate chunks: each level of the index (``level:128``) and, with a graph,
each level expanded by a hop radius (``graph:256:r=1``). Routers output one weight per granularity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mograg.errors import MogragError
from mograg.retrieval.rank import LevelRanking, Pick, Query, assemble, picks_from_ranking
from mograg.types import Hit, SearchResult

if TYPE_CHECKING:
    from mograg.index.core import Index
    from mograg.store.snapshot import Snapshot

STRATEGIES = ("argmax", "mix", "blend")
# blending measured better than argmax for the trained and the training-free routers on
# 6 of 7 dev sets (README, "Measured"), so it is what a search does unless told otherwise
DEFAULT_STRATEGY = "blend"
BLEND_MIN_WEIGHT = 0.1


def granularity_names(index: Index) -> list[str]:
    """Names of the granularities of an index, in router output order."""
    names = [f"level:{s}" for s in index.levels]
    from mograg.graph.build import graph_name, graph_radii

    names += [graph_name(s, r) for s in index.levels for r in graph_radii(index)]
    return names


def granularity_picks(
    index: Index, query: Query, rankings: Sequence[LevelRanking], name: str
) -> list[Pick]:
    """Ordered candidates of one granularity."""
    kind, _, arg = name.partition(":")
    if kind == "level":
        return picks_from_ranking(rankings[index.level_index(int(arg))])
    if kind == "graph":
        from mograg.graph.build import graph_picks, parse_graph_name

        parsed = parse_graph_name(name)
        if parsed is not None:
            size, radius = parsed
            return graph_picks(index, query, rankings[index.level_index(size)], radius)
    raise MogragError(f"unknown granularity {name!r}")


def mix_picks(
    snap: Snapshot, rankings: Sequence[LevelRanking], level_weights: np.ndarray
) -> list[Pick]:
    """MoG's tree scoring over the levels.

    Each finest chunk scores ``sum_j w_j * s_j(ancestor_j)``, where ``s_j`` is the
    level's fused score scaled to [0, 1] (0 outside its candidates). The best finest
    chunks are returned as their containing chunk at the highest-weighted level.
    """
    anc = snap.ancestors
    n0 = snap.n_chunks(0)
    total = np.zeros(n0, dtype=np.float64)
    for j, r in enumerate(rankings):
        if not len(r.ids) or level_weights[j] <= 0:
            continue
        s = np.zeros(snap.n_chunks(j), dtype=np.float64)
        top = float(r.scores.max())
        s[r.ids] = r.scores / top if top > 0 else 0.0
        total += level_weights[j] * s[anc[j]]
    best_level = int(np.argmax(level_weights))
    cand = np.flatnonzero(total > 0)
    cand = cand[np.argsort(-total[cand], kind="stable")]
    picks: list[Pick] = []
    seen: set[int] = set()
    for c in cand.tolist():
        container = int(anc[best_level][c])
        if container in seen:
            continue
        seen.add(container)
        picks.append(Pick(best_level, container, float(total[c])))
    return picks


def blend_picks(
    snap: Snapshot, per_granularity: Sequence[list[Pick]], weights: np.ndarray
) -> list[Pick]:
    """Interleave granularities so each gets a share of tokens in proportion to its weight."""
    keep = [g for g in range(len(weights)) if weights[g] >= BLEND_MIN_WEIGHT]
    if not keep:
        keep = [int(np.argmax(weights))]
    w = weights[keep] / weights[keep].sum()
    keyed: list[tuple[float, int, int, Pick]] = []
    for wi, g in zip(w.tolist(), keep, strict=True):
        used = 0
        for k, p in enumerate(per_granularity[g]):
            keyed.append((used / max(wi, 1e-9), -wi, k, p))
            used += int(snap.levels[p.level][p.chunk]["n_tokens"])
    keyed.sort(key=lambda t: (t[0], t[1], t[2]))
    return [p for *_, p in keyed]


def routed_hits(
    index: Index,
    query: Query,
    rankings: Sequence[LevelRanking],
    weights: np.ndarray,
    names: Sequence[str],
    budget: int,
    strategy: str = DEFAULT_STRATEGY,
) -> tuple[list[Hit], list[str]]:
    """Hits for a query given router weights over ``names``; also the chosen names."""
    if strategy not in STRATEGIES:
        raise MogragError(f"unknown strategy {strategy!r}; use one of: {', '.join(STRATEGIES)}")
    snap = index.snapshot
    best = int(np.argmax(weights))
    if strategy == "argmax":
        picks = granularity_picks(index, query, rankings, names[best])
        return assemble(snap, query, picks, budget), [names[best]]
    if strategy == "mix":
        n_lv = len(index.levels)
        lw = np.asarray(weights[:n_lv], dtype=np.float64)
        if best >= n_lv:  # a graph radius won: use it directly
            picks = granularity_picks(index, query, rankings, names[best])
            return assemble(snap, query, picks, budget), [names[best]]
        picks = mix_picks(snap, rankings, lw)
        chosen = [names[j] for j in np.flatnonzero(lw > 0).tolist()]
        return assemble(snap, query, picks, budget), chosen
    per = [granularity_picks(index, query, rankings, n) for n in names]
    picks = blend_picks(snap, per, np.asarray(weights, np.float64))
    chosen = [n for n, w in zip(names, weights, strict=True) if w >= BLEND_MIN_WEIGHT]
    return assemble(snap, query, picks, budget), chosen or [names[best]]


def route_search(
    index: Index,
    query: Query,
    budget: int,
    mode: str = "hybrid",
    router: str | None = None,
    strategy: str = DEFAULT_STRATEGY,
) -> SearchResult:
    """Search with a router choosing (or mixing) granularities per query."""
    from mograg.retrieval.routers import load_router

    model = load_router(index, router, budget)
    rankings = index.rank(query, mode)
    names = granularity_names(index)
    weights = model.weights(index, query, rankings, names)
    hits, chosen = routed_hits(index, query, rankings, weights, names, budget, strategy)
    routing: dict[str, Any] = {
        "router": model.name,
        "strategy": strategy,
        "weights": {n: round(float(w), 4) for n, w in zip(names, weights, strict=True)},
        "chosen": chosen,
    }
    return SearchResult(query=query.text, hits=hits, budget=budget, routing=routing)
