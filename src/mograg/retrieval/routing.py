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
from mograg.graph.walk import graph_picks, graph_radii, named_seeds
from mograg.graph.walk_levels import graph_picks_levels
from mograg.retrieval.fusion import RRF_LEVELS, rrf_picks
from mograg.retrieval.rank import assemble, picks_from_ranking
from mograg.retrieval.routers import load_router
from mograg.store.query_sims import query_sims
from mograg.types import (
    DEFAULT_STRATEGY,
    Granularity,
    Hit,
    LevelRanking,
    Mode,
    Pick,
    Query,
    Routing,
    SearchResult,
    Strategy,
    check_strategy,
)

if TYPE_CHECKING:
    from mograg.retrieval.view import IndexView
    from mograg.store.snapshot import Snapshot

BLEND_MIN_WEIGHT = 0.1


def granularities(index: IndexView) -> list[Granularity]:
    """The granularities of an index, in router output order: levels, then graph radii."""
    out = [Granularity.level(s) for s in index.levels]
    out += [Granularity.graph(s, r) for s in index.levels for r in graph_radii(index.manifest)]
    return out


def granularity_names(index: IndexView) -> list[str]:
    """Names of the granularities of an index, in router output order."""
    return [str(g) for g in granularities(index)]


def granularity_picks(
    index: IndexView, query: Query, rankings: Sequence[LevelRanking], name: str,
    named: Sequence[list[int]] | None = None, limit: int | None = None,
) -> list[Pick]:
    """Ordered candidates of one granularity (``limit``: only the first that many).

    ``named``: each level's :func:`~mograg.graph.walk.named_seeds` when the caller has
    them already.
    """
    g = Granularity.parse(name)
    if g is None:
        raise MogragError(f"unknown granularity {name!r}")
    j = index.level_index(g.size)
    ranking = rankings[j]
    if g.is_graph:
        return graph_picks(index.snapshot, query, ranking, g.radius,
                           named[j] if named is not None else None, limit)
    return picks_from_ranking(ranking, limit)


def granularity_lists(
    index: IndexView, query: Query, rankings: Sequence[LevelRanking], names: Sequence[str],
    named: Sequence[list[int]] | None = None, limits: Sequence[int | None] | None = None,
) -> list[list[Pick]]:
    """:func:`granularity_picks` of each of ``names`` (``limits``: each one's, None for
    all), the graph granularities of one radius walked for all their levels at once
    (:func:`~mograg.graph.walk_levels.graph_picks_levels`: the same picks)."""
    limits = list(limits) if limits is not None else [None] * len(names)
    out: list[list[Pick]] = [[] for _ in names]
    walks: dict[int, list[tuple[int, int]]] = {}  # radius -> (position in names, level)
    for g, name in enumerate(names):
        gran = Granularity.parse(name)
        if gran is None:
            raise MogragError(f"unknown granularity {name!r}")
        j = index.level_index(gran.size)
        if gran.is_graph:
            walks.setdefault(gran.radius, []).append((g, j))
        else:
            out[g] = picks_from_ranking(rankings[j], limits[g])
    for radius, members in walks.items():
        lists = graph_picks_levels(
            index.snapshot, query, [rankings[j] for _, j in members], radius,
            [named[j] for _, j in members] if named is not None else None,
            [limits[g] for g, _ in members])
        for (g, _), picks in zip(members, lists, strict=True):
            out[g] = picks
    return out


def named_by_level(index: IndexView, query: Query) -> list[list[int]] | None:
    """Each level's chunks of the documents the question names (None without a graph)."""
    graph = index.snapshot.graph
    if graph is None:
        return None
    return [named_seeds(index.snapshot, graph, query, j) for j in range(len(index.levels))]


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
    picks: list[Pick] = []
    due, neg_w, pos = [], [], []  # sort keys: tokens used before / weight, -weight, position
    for wi, g in zip(w.tolist(), keep, strict=True):
        gp = per_granularity[g]
        tokens = pick_tokens(snap, gp)
        used = np.zeros(len(gp), np.int64)
        np.cumsum(tokens[:-1], out=used[1:])
        due.append(used / max(wi, 1e-9))
        neg_w.append(np.full(len(gp), -wi))
        pos.append(np.arange(len(gp)))
        picks.extend(gp)
    if not picks:
        return []
    order = np.lexsort((np.concatenate(pos), np.concatenate(neg_w), np.concatenate(due)))
    return [picks[i] for i in order.tolist()]


def pick_tokens(snap: Snapshot, picks: Sequence[Pick]) -> np.ndarray:
    """Each pick's length in tokens."""
    level = np.fromiter((p.level for p in picks), np.int64, len(picks))
    chunk = np.fromiter((p.chunk for p in picks), np.int64, len(picks))
    out = np.zeros(len(picks), np.int64)
    for j in np.unique(level).tolist():
        at = level == j
        out[at] = snap.levels[j]["n_tokens"][chunk[at]]
    return out


def routed_hits(
    index: IndexView,
    query: Query,
    rankings: Sequence[LevelRanking],
    weights: np.ndarray,
    names: Sequence[str],
    budget: int,
    strategy: str = DEFAULT_STRATEGY,
    span_model: Any = None,
    stats: dict[str, int] | None = None,
) -> tuple[list[Hit], list[str]]:
    """Hits for a query given router weights over ``names``; also the chosen names.

    ``spans`` (and ``auto`` with a ``span_model``) select spans from every granularity with
    the span model (default: the shipped one), hedged on the best-weighted granularity.
    ``stats`` receives the candidates pruned (see :func:`mograg.retrieval.rank.assemble`).
    """
    check_strategy(strategy)
    if strategy == "auto":
        strategy = "spans" if span_model is not None else "blend"
    snap = index.snapshot
    known = query_sims(snap, query.vector, rankings)
    best = int(np.argmax(weights))
    if strategy == "argmax":
        picks = granularity_picks(index, query, rankings, names[best])
        return assemble(snap, query, picks, budget, stats, known), [names[best]]
    if strategy == "mix":
        n_lv = len(index.levels)
        lw = np.asarray(weights[:n_lv], dtype=np.float64)
        if best >= n_lv:  # a graph radius won: use it directly
            picks = granularity_picks(index, query, rankings, names[best])
            return assemble(snap, query, picks, budget, stats, known), [names[best]]
        picks = mix_picks(snap, rankings, lw)
        chosen = [names[j] for j in np.flatnonzero(lw > 0).tolist()]
        return assemble(snap, query, picks, budget, stats, known), chosen
    if strategy == "spans":
        from mograg.retrieval.spans import HEDGE_SHARE, PER_GRANULARITY, span_selection

        named = named_by_level(index, query)
        # the span model sees each granularity's first picks; the hedge, all of the best's
        per = granularity_lists(index, query, rankings, names, named,
                                [None if g == best else PER_GRANULARITY
                                 for g in range(len(names))])
        ordered = span_selection(index, query, rankings, per, span_model, named)
        if ordered is not None:
            # hedge: the granularity the per-query weights rate best keeps a share
            mixed = blend_picks(snap, [ordered, per[best]],
                                np.array([1.0 - HEDGE_SHARE, HEDGE_SHARE]))
            hits = assemble(snap, query, mixed, budget, stats, known)
            return hits, sorted({f"level:{h.level}" for h in hits}, key=lambda n: int(n[6:]))
    per = granularity_lists(index, query, rankings, names)
    picks = blend_picks(snap, per, np.asarray(weights, np.float64))
    chosen = [n for n, w in zip(names, weights, strict=True) if w >= BLEND_MIN_WEIGHT]
    return assemble(snap, query, picks, budget, stats, known), chosen or [names[best]]


def route_search(
    index: IndexView,
    query: Query,
    budget: int,
    mode: Mode = "hybrid",
    router: str | None = None,
    strategy: Strategy = DEFAULT_STRATEGY,
) -> SearchResult:
    """Search with a router choosing (or mixing) granularities per query."""
    if router == RRF_LEVELS:
        rankings = index.rank(query, mode)
        hits = assemble(index.snapshot, query, rrf_picks(rankings), budget,
                        sims=query_sims(index.snapshot, query.vector, rankings))
        routing = Routing(router=RRF_LEVELS, chosen=sorted({f"level:{h.level}" for h in hits}))
        return SearchResult(query=query.text, hits=hits, budget=budget,
                            routing=routing.to_dict())
    model = load_router(index, router, budget)
    span_model = getattr(model, "span_model", None)
    if strategy == "auto":  # spans wherever a span model serves this router, else blend
        strategy = "spans" if span_model is not None else "blend"
    rankings = index.rank(query, mode)
    names = granularity_names(index)
    weights = model.weights(index, query, rankings, names)
    stats: dict[str, int] = {}
    hits, chosen = routed_hits(index, query, rankings, weights, names, budget, strategy,
                               span_model=span_model, stats=stats)
    routing = Routing(
        router=model.name, strategy=strategy, chosen=chosen,
        weights={n: round(float(w), 4) for n, w in zip(names, weights, strict=True)},
        folded=stats.get("folded", 0),
    )
    return SearchResult(query=query.text, hits=hits, budget=budget, routing=routing.to_dict())


def fixed_search(
    index: IndexView, query: Query, budget: int, mode: Mode, name: str
) -> SearchResult:
    """Search one fixed granularity, ``level:N`` or ``graph:N:r=R``."""
    g = Granularity.parse(name)
    if g is None or (g.is_graph and name not in granularity_names(index)):
        known = [n for n in granularity_names(index) if n.startswith("graph:")]
        hint = ", ".join(known) if known else "none: build the graph with mograg index --graph"
        raise MogragError(f"unknown graph granularity {name!r}; this index has: {hint}")
    ranking = index.rank(query, mode, levels=[index.level_index(g.size)])[0]
    picks = (graph_picks(index.snapshot, query, ranking, g.radius) if g.is_graph
             else picks_from_ranking(ranking))
    stats: dict[str, int] = {}
    hits = assemble(index.snapshot, query, picks, budget, stats)
    routing = Routing(router=name, chosen=[name], folded=stats.get("folded", 0))
    return SearchResult(query=query.text, hits=hits, budget=budget, routing=routing.to_dict())
