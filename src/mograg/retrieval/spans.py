"""Per-span selection: choose spans from every granularity by estimated evidence per token.

Every candidate of every granularity (each level's ranking and each graph expansion)
gets transferable features: its size, its rank and relative scores within its level,
how many other levels put an overlapping chunk near the top (does the same region win
at 32, 64 and 128 tokens?), how many of the finest level's best hits fall inside it,
whether the graph reached it or the question names its document, and the question's
form. A linear model estimates the share of its text that is evidence; the budget is
then filled greedily by that estimate (a knapsack by density), the filler merging
spans and never taking a sentence twice. MoG's per-query router is the special case in
which every chosen span comes from one level.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from mograg.errors import MogragError
from mograg.retrieval.chunk_table import chunk_table
from mograg.retrieval.pooled import package_data, pooled_ridge
from mograg.retrieval.rank import positions_in
from mograg.store.query_sims import query_sims
from mograg.types import LevelRanking, Pick, Query, Span, merge_intervals

if TYPE_CHECKING:
    from mograg.retrieval.view import IndexView
    from mograg.store.snapshot import Snapshot

PER_GRANULARITY = 30
AGREE_TOP = 5
FINE_TOP = 10
SPAN_FEATURES = [
    "log_rank", "rel_fused", "dense_z", "dense_rel", "bm25_rel", "ranked", "lifted", "named",
    "agree_levels", "fine_inside", "fill", "doc_rank", "lead", "g_order", "pick_rel",
    "lifted_early",
]


@dataclass
class Candidates:
    """One query's candidate spans: ``(level, chunk)`` pairs and their feature rows."""

    level: np.ndarray
    chunk: np.ndarray
    x: np.ndarray
    linked: frozenset[tuple[int, int]] = frozenset()  # reached through the graph
    doc: np.ndarray | None = None  # each candidate's document (for per-source offsets)


def candidate_features(
    snap: Snapshot, qvec: np.ndarray, rankings: Sequence[LevelRanking],
    per_granularity: Sequence[Sequence[Pick]], named: set[tuple[int, int]] | None = None,
    q_features: np.ndarray | None = None,
) -> Candidates:
    """Features of every distinct candidate in the first picks of each granularity."""
    n_lv = len(rankings)
    levels, chunks, first, rel, linked = _distinct_candidates(per_granularity)
    n = len(levels)
    x = np.zeros((n, len(SPAN_FEATURES)), np.float64)
    if n == 0:
        return Candidates(levels, chunks, design(x, levels, n_lv, q_features), frozenset(linked),
                          np.zeros(0, np.int64))
    known = query_sims(snap, qvec, rankings)
    tab = chunk_table(snap)
    rows = tab.rows(levels, chunks)
    lo, hi = tab.finest_lo[rows], tab.finest_hi[rows]
    docs = tab.doc[rows].astype(np.int64)
    sims = np.zeros(n)
    # per level: the ranking's dense mean, spread and best, its best fused and BM25 score
    mean, sd, d_max = np.zeros(n_lv), np.ones(n_lv), np.zeros(n_lv)
    f_max, b_max = np.zeros(n_lv, np.float32), np.zeros(n_lv, np.float32)
    # each level's top chunks as finest ranges, for agreement between levels
    top_lo = np.full((n_lv, AGREE_TOP), -1, np.int64)
    top_hi = np.full((n_lv, AGREE_TOP), -1, np.int64)
    at = np.searchsorted(levels, np.arange(n_lv + 1)).tolist()  # level by level
    for j, rk in enumerate(rankings):
        t = tab.offsets[j] + rk.ids[:AGREE_TOP]
        top_lo[j, : len(t)] = tab.finest_lo[t]
        top_hi[j, : len(t)] = tab.finest_hi[t]
        if at[j] == at[j + 1]:
            continue
        sims[at[j]:at[j + 1]] = known.of(j, chunks[at[j]:at[j + 1]])
        if len(rk.dense):
            d = rk.dense.astype(np.float64)
            m, s = mean_std(d)
            mean[j], sd[j], d_max[j] = m, s or 1.0, float(d.max())
        f_max[j] = rk.scores.max() if len(rk.scores) else 0.0
        b_max[j] = rk.bm25.max() if len(rk.bm25) else 0.0
    x[:, 2] = (sims - mean[levels]) / sd[levels]
    x[:, 3] = sims - d_max[levels]
    # each candidate's place in its level's ranking (rankings numbered like the table)
    lens = np.array([len(rk.ids) for rk in rankings], np.int64)
    begin = np.zeros(n_lv + 1, np.int64)
    np.cumsum(lens, out=begin[1:])
    ranked_rows = np.concatenate([tab.offsets[j] + rk.ids for j, rk in enumerate(rankings)])
    pos, ranked = positions_in(ranked_rows, rows)
    r = pos - begin[levels]
    x[:, 5] = ranked
    x[:, 0] = np.log1p(np.where(ranked, r, lens[levels]))
    hit = np.flatnonzero(ranked)
    hit_level = levels[hit]
    # float32 quotients, as each level's scores over its best (a float32 value)
    fused = np.concatenate([rk.scores for rk in rankings]).astype(np.float32, copy=False)
    ok = f_max[hit_level] > 0
    x[hit[ok], 1] = fused[pos[hit[ok]]] / f_max[hit_level[ok]]
    with_bm25 = np.array([len(rk.bm25) == len(rk.ids) for rk in rankings])
    ok = (b_max[hit_level] > 0) & with_bm25[hit_level]
    if ok.any():
        bm25 = np.concatenate([rk.bm25 if len(rk.bm25) == len(rk.ids)
                               else np.zeros(len(rk.ids), np.float32) for rk in rankings])
        x[hit[ok], 4] = bm25.astype(np.float32, copy=False)[pos[hit[ok]]] / b_max[hit_level[ok]]
    fill = tab.fill(rows, levels)
    lead = tab.lead[rows]
    fine_top = rankings[0].ids[:FINE_TOP]
    # documents by their first place in the finest ranking
    docs0 = tab.doc[rankings[0].ids]
    seen, first_at = np.unique(docs0, return_index=True)
    doc_place = np.empty(len(seen), np.int64)
    doc_place[np.argsort(first_at, kind="stable")] = np.arange(len(seen))
    place, placed = positions_in(seen, docs)
    doc_rank = np.where(placed, doc_place[place] if len(seen) else 0, len(seen))
    overlap = (top_lo[None] < hi[:, None, None]) & (lo[:, None, None] < top_hi[None])
    agree = np.asarray(overlap.any(axis=2))  # (candidates, levels)
    agree[np.arange(n), levels] = False
    x[:, 6] = 1.0 - x[:, 5]
    if named:
        named_rows = np.unique([int(tab.offsets[j]) + c for j, c in named])
        x[:, 7] = positions_in(named_rows, rows)[1]
    x[:, 8] = agree.sum(axis=1) / max(n_lv - 1, 1)
    if len(fine_top):
        inside = (fine_top[None] >= lo[:, None]) & (fine_top[None] < hi[:, None])
        x[:, 9] = np.count_nonzero(inside, axis=1) / len(fine_top)  # the rows' means
    x[:, 10] = fill
    x[:, 11] = np.log1p(doc_rank)
    x[:, 12] = lead
    order = first.astype(np.float64)
    x[:, 13] = np.log1p(order)
    x[:, 14] = rel
    x[:, 15] = x[:, 6] / (1.0 + order)
    return Candidates(levels, chunks, design(x, levels, n_lv, q_features), frozenset(linked),
                      docs)


def _distinct_candidates(
    per_granularity: Sequence[Sequence[Pick]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, set[tuple[int, int]]]:
    """The distinct ``(level, chunk)`` among each granularity's first picks, in order;
    each one's best position in any list, best score relative to its list's top (at
    least 0), and those some list reached through the graph."""
    level: list[int] = []
    chunk: list[int] = []
    pos: list[int] = []
    graph: list[bool] = []
    rel: list[np.ndarray] = []
    for picks in per_granularity:
        head = picks[:PER_GRANULARITY]
        if not head:
            continue
        level += [p.level for p in head]
        chunk += [p.chunk for p in head]
        graph += [p.linked for p in head]
        pos += range(len(head))
        rel.append(np.array([p.score for p in head]) / max(head[0].score, 1e-12))
    if not level:
        none = np.zeros(0, np.int64)
        return none, none, none, np.zeros(0), set()
    lv, ch = np.array(level, np.int64), np.array(chunk, np.int64)
    size = int(ch.max()) + 1
    key = lv * size + ch
    order = np.argsort(key, kind="stable")  # by (level, chunk)
    sorted_key = key[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_key[1:] != sorted_key[:-1]]))
    uniq = sorted_key[starts]
    first = np.minimum.reduceat(np.array(pos, np.int64)[order], starts)
    best = np.maximum(np.maximum.reduceat(np.concatenate(rel)[order], starts), 0.0)
    levels, chunks = uniq // size, uniq % size
    reached = np.maximum.reduceat(np.array(graph, bool)[order], starts)
    return levels, chunks, first, best, set(zip(levels[reached].tolist(),
                                                chunks[reached].tolist(), strict=True))


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """``values.mean()`` and ``values.std()`` (float64, not empty) by numpy's own
    operations, the mean computed once: the same bits at a third of the cost."""
    n = len(values)
    mean = np.add.reduce(values) / n
    dev = values - mean
    return float(mean), float(np.sqrt(np.add.reduce(np.multiply(dev, dev, out=dev)) / n))


def design(x: np.ndarray, levels: np.ndarray, n_levels: int,
           q_features: np.ndarray | None) -> np.ndarray:
    """The model's input: span features, their interactions with the level, and the
    question's form interacted with the level (so each size can like other questions)."""
    n, f = x.shape
    n_q = len(q_features) if q_features is not None else 0
    # columns: x, the level's one-hot, then x and the question's features times the
    # one-hot (feature-major: feature k at level l is column k * n_levels + l); written
    # in place, the zeros left as they are (no products of whole blocks with the one-hot)
    out = np.zeros((n, f + n_levels + (f + n_q) * n_levels))
    rows = np.arange(n)[:, None]
    out[:, :f] = x
    out[rows[:, 0], f + levels] = 1.0
    start = f + n_levels
    out[rows, start + np.arange(f) * n_levels + levels[:, None]] = x
    if q_features is not None:
        start += f * n_levels
        out[rows, start + np.arange(n_q) * n_levels + levels[:, None]] = q_features
    return out


@dataclass
class SpanModel:
    """Linear estimate of a candidate's evidence share from its design row."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    clip: float = 3.0
    meta: dict[str, Any] = field(default_factory=dict)
    # added by level: what `mograg tune` learns for one corpus (empty: none)
    level_offset: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # added by (source, level) on top of ``level_offset``, for an index of several knowledge
    # sources (rows: ``sources``; empty: none)
    source_offset: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sources: tuple[str, ...] = ()

    def score(self, cands: Candidates, doc_rows: np.ndarray | None = None) -> np.ndarray:
        """Estimated evidence share of each candidate, with the corpus's level offsets and,
        given each document's row in :attr:`sources` (``doc_rows``, -1: none), its source's."""
        pred = self.predict(cands.x)
        if len(self.level_offset):
            pred = pred + self.level_offset[cands.level]
        if self.source_offset.size and doc_rows is not None and cands.doc is not None:
            rows = doc_rows[cands.doc]
            m = rows >= 0
            pred[m] += self.source_offset[rows[m], cands.level[m]]
        return pred

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Estimated evidence share of each candidate."""
        if x.shape[1] != len(self.mean):
            raise MogragError(
                f"span model expects {len(self.mean)} features, this mograg computes "
                f"{x.shape[1]}; rebuild it with python bench/train_default_router.py")
        z = x - self.mean  # the same operations as np.clip((x - mean) / scale), in place
        z /= self.scale
        np.clip(z, -self.clip, self.clip, out=z)
        return z @ self.coef + self.intercept

    def to_bytes(self) -> bytes:
        """Serialise (deterministic)."""
        buf = io.BytesIO()
        head: dict[str, Any] = {"intercept": self.intercept, "clip": self.clip,
                                "meta": self.meta}
        extra: dict[str, Any] = {}  # Any: np.savez's keywords include allow_pickle
        if self.source_offset.size:  # absent otherwise: a one-source model keeps its bytes
            head["sources"] = list(self.sources)
            extra["source_offset"] = self.source_offset
        np.savez(buf, header=np.frombuffer(json.dumps(head, sort_keys=True).encode(), np.uint8),
                 mean=self.mean, scale=self.scale, coef=self.coef,
                 level_offset=self.level_offset, **extra)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SpanModel:
        """Inverse of :meth:`to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            h = json.loads(bytes(z["header"]).decode())
            offset = np.array(z["level_offset"]) if "level_offset" in z.files else np.zeros(0)
            by_source = (np.array(z["source_offset"]) if "source_offset" in z.files
                         else np.zeros((0, 0)))
            return cls(np.array(z["mean"]), np.array(z["scale"]), np.array(z["coef"]),
                       h["intercept"], h["clip"], h.get("meta", {}), offset, by_source,
                       tuple(h.get("sources", ())))


def fit_span_model(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray],
                   alpha: float = 100.0, clip: float = 3.0) -> SpanModel:
    """Corpus-weighted ridge regression of evidence share (each corpus counts the same)."""
    mean, scale, coef, y_mean = pooled_ridge(xs, ys, alpha, clip)
    return SpanModel(mean, scale, coef, float(y_mean), clip,
                     {"alpha": alpha, "n_train": int(sum(len(x) for x in xs))})


def span_picks(cands: Candidates, scores: np.ndarray) -> list[Pick]:
    """Candidates best estimated density first (ties: finer level first)."""
    order = np.lexsort((cands.level, -scores))
    linked = cands.linked
    return [Pick(j, c, s, (j, c) in linked) for j, c, s in zip(
        cands.level[order].tolist(), cands.chunk[order].tolist(),
        np.asarray(scores, np.float64)[order].tolist(), strict=True)]


def query_candidates(
    index: IndexView, query: Query, rankings: Sequence[LevelRanking],
    per_granularity: Sequence[Sequence[Pick]], named_seeds: Sequence[list[int]] | None = None,
) -> Candidates:
    """Candidates of one query as a search sees them (named documents from the graph;
    ``named_seeds``: each level's, when the caller has them already)."""
    from mograg.graph.walk import named_seeds as seeds_of
    from mograg.retrieval.signals import graph_context, named_doc_count, question_features

    snap = index.snapshot
    graph, _ = graph_context(index)
    named: set[tuple[int, int]] = set()
    if graph is not None:
        for j in range(len(rankings)):
            seeds = named_seeds[j] if named_seeds is not None else seeds_of(snap, graph, query, j)
            named.update((j, c) for c in seeds)
    qf = np.array(question_features(query.text, named_doc_count(snap, graph, query),
                                    query.n_tokens))
    return candidate_features(snap, query.vector, rankings, per_granularity, named, qf)


def evidence_share(snap: Snapshot, cands: Candidates, evidence: Sequence[Span]) -> np.ndarray:
    """Share of each candidate's characters that is gold evidence (the training label)."""

    gold: dict[str, list[tuple[int, int]]] = {}
    for d, s, e in evidence:
        gold.setdefault(d, []).append((s, e))
    merged = {d: merge_intervals(v) for d, v in gold.items()}
    y = np.zeros(len(cands.level))
    for k, (j, c) in enumerate(zip(cands.level.tolist(), cands.chunk.tolist(), strict=True)):
        doc, s, e = snap.chunk_span(j, c)
        g = merged.get(snap.doc_ids[doc])
        if g:
            y[k] = sum(max(0, min(e, b) - max(s, a)) for a, b in g) / max(e - s, 1)
    return y


SHIPPED_SPAN_FILE = "span-model-v1.npz"
SPAN_LEVELS = [32, 64, 128, 256, 512]


@lru_cache(maxsize=1)
def shipped_span_model() -> SpanModel | None:
    """The span model shipped in the package (None if missing)."""
    data = package_data(SHIPPED_SPAN_FILE)
    return SpanModel.from_bytes(data) if data is not None else None


def span_model_for(index: IndexView) -> SpanModel | None:
    """The shipped span model when it fits the index's levels, else None."""
    model = shipped_span_model()
    return model if model is not None and list(index.levels) == SPAN_LEVELS else None


def span_selection(
    index: IndexView, query: Query, rankings: Sequence[LevelRanking],
    per_granularity: Sequence[Sequence[Pick]], model: SpanModel | None = None,
    named_seeds: Sequence[list[int]] | None = None,
) -> list[Pick] | None:
    """Picks in estimated-density order (``model``, default the shipped one), or None when
    no span model fits the index. (Routing hedges them with ``HEDGE_SHARE`` of the best
    per-query granularity.)"""
    model = model or span_model_for(index)
    if model is None:
        return None
    cands = query_candidates(index, query, rankings, per_granularity, named_seeds)
    if not len(cands.level):
        return []
    return span_picks(cands, model.score(cands, model_doc_rows(index.snapshot, model)))


def model_doc_rows(snap: Snapshot, model: SpanModel) -> np.ndarray | None:
    """Each document's row in the model's per-source offsets (None: the model has none)."""
    if not model.source_offset.size:
        return None
    from mograg.retrieval.sources import index_sources

    return index_sources(snap).rows_for(model.sources)


# chosen on the average of the leave-one-set-out table (bench/transfer.py), never per set
SPAN_ALPHA = 10.0
HEDGE_SHARE = 0.2  # of {0, 0.1, 0.2, 0.3, 0.4, 0.5}: the best average, no set below 0


def fit_default_spans(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray],
                      corpora: Sequence[str]) -> SpanModel:
    """The shipped span model's recipe."""
    model = fit_span_model(xs, ys, alpha=SPAN_ALPHA)
    model.meta["corpora_names"] = ", ".join(corpora)
    return model
