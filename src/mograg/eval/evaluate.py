"""`mograg eval`: retrieval quality per granularity, best fixed level, oracle and routers.

Every system fills the same token budget and is scored by the same code
(:mod:`mograg.eval.metrics`), so the numbers are comparable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from threadpoolctl import threadpool_limits

from mograg.answer.squad import answer_found
from mograg.errors import MogragError
from mograg.eval.metrics import reciprocal_rank, span_scores
from mograg.eval.qa import cited_sources, figure_recall, names_source, token_recall
from mograg.eval.questions import Question
from mograg.index.core import Index, no_progress
from mograg.retrieval.fusion import RRF_LEVELS, rrf_picks
from mograg.retrieval.granularity_model import default_router_for
from mograg.retrieval.rank import assemble, rank_level, rank_levels
from mograg.retrieval.router_training import soft_labels, train_ridge_router, train_router
from mograg.retrieval.routers import (
    EntropyRouter,
    Router,
    TrainedRouter,
    features,
    load_router,
)
from mograg.retrieval.routing import (
    granularities,
    granularity_picks,
    routed_hits,
)
from mograg.store.query_sims import query_sims
from mograg.types import ROUTER_MODELS, WEIGHT_STRATEGIES, Hit, LevelRanking, Mode, Query

Progress = Callable[[str, int, int], None]
METRICS = ("recall", "precision", "iou", "answer_recall", "mrr", "token_recall", "figure_recall",
           "right_source")



def score_hits(hits: Sequence[Hit], q: Question) -> dict[str, float]:
    """All metrics of one question's hits (answer_recall is NaN without answers)."""
    spans = [(h.doc_id, h.start, h.end) for h in hits]
    recall, precision, iou = span_scores(spans, q.evidence)
    ans = float(answer_found(" ".join(h.text for h in hits), q.answers)) if q.answers else np.nan
    rr = reciprocal_rank(spans, q.evidence) if q.evidence else np.nan
    if not q.evidence:
        recall = precision = iou = np.nan
    tok = fig = src = np.nan
    if q.answers:
        context = "\n".join(h.text for h in hits)
        tok = token_recall(context, q.answers[0])
        fig = figure_recall(context, q.answers[0])
    if q.metadata.get("sources"):
        cited = cited_sources(q.metadata["sources"])
        src = float(any(names_source(h.doc_id, cited) for h in hits)) if cited else np.nan
    return {"recall": recall, "precision": precision, "iou": iou, "answer_recall": ans, "mrr": rr,
            "token_recall": tok, "figure_recall": fig, "right_source": src}


def label_score(m: dict[str, float]) -> float:
    """The quality a router learns to maximise: recall (IoU breaks ties), else answer found."""
    if not np.isnan(m["recall"]):
        return m["recall"] + 0.01 * m["iou"]
    return 0.0 if np.isnan(m["answer_recall"]) else m["answer_recall"]


def encode_timed(index: Index, questions: Sequence[Question]) -> tuple[list[Query], float]:
    """Encode questions in one batch; also the mean milliseconds per question."""
    t0 = time.perf_counter()
    queries = index.encode_queries([q.question for q in questions])
    return queries, 1000 * (time.perf_counter() - t0) / max(len(questions), 1)


@dataclass
class Collected:
    """Per-question rankings, features and per-granularity results at one budget."""

    names: list[str]
    budget: int
    questions: list[Question]
    queries: list[Query]
    rankings: list[list[LevelRanking]]
    features: np.ndarray
    metrics: list[list[dict[str, float]]]  # [question][granularity]
    latency_ms: np.ndarray  # (n_questions, n_granularities)
    rank_ms: np.ndarray  # time to rank all levels, per question
    embed_ms: float = 0.0

    def scores(self) -> np.ndarray:
        """Label scores (questions x granularities)."""
        return np.array([[label_score(m) for m in row] for row in self.metrics])


def collect(
    index: Index,
    questions: Sequence[Question],
    budget: int,
    mode: str = "hybrid",
    progress: Progress = no_progress,
    queries: Sequence[Query] | None = None,
    embed_ms: float | None = None,
) -> Collected:
    """Retrieve every question at every granularity (rankings computed once per level).

    ``embed_ms`` is the per-question query-embedding time to add to every latency
    (measured here when the queries are encoded here).
    """
    grans = granularities(index)
    names = [str(g) for g in grans]
    n_lv = len(index.levels)
    # the level each granularity ranks (a graph granularity expands one level's ranking)
    base = [index.level_index(g.size) for g in grans]
    snap = index.snapshot
    backend = index.backend
    if queries is None:
        queries, embed_ms = encode_timed(index, questions)
    embed_ms = embed_ms or 0.0
    all_rank, feats, metrics = [], [], []
    lat = np.zeros((len(questions), len(names)))
    rank_ms = np.zeros(len(questions))
    for i, (q, query) in enumerate(zip(questions, queries, strict=True)):
        levels, level_ms = [], []  # each level ranked alone, as a fixed granularity's search
        for j in range(n_lv):
            t = time.perf_counter()
            levels.append(rank_level(backend, j, query, cast(Mode, mode)))
            level_ms.append(1000 * (time.perf_counter() - t))
        # all levels in one pass, as a routed search ranks them (pooled levels' dense
        # similarities from the level below's: equal up to float32 rounding)
        t = time.perf_counter()
        rankings = rank_levels(backend, range(n_lv), query, cast(Mode, mode))
        rank_ms[i] = 1000 * (time.perf_counter() - t)
        row = []
        for g, name in enumerate(names):
            t = time.perf_counter()
            hits = assemble(snap, query, granularity_picks(index, query, levels, name), budget)
            took = 1000 * (time.perf_counter() - t)
            lat[i, g] = embed_ms + took + level_ms[base[g]]
            row.append(score_hits(hits, q))
        all_rank.append(rankings)
        feats.append(features(query, rankings))
        metrics.append(row)
        progress("retrieve", i + 1, len(questions))
    return Collected(
        names=names, budget=budget, questions=list(questions), queries=list(queries),
        rankings=all_rank, features=np.array(feats), metrics=metrics, latency_ms=lat,
        rank_ms=rank_ms, embed_ms=embed_ms,
    )


def summarize(
    rows: Sequence[dict[str, float]], latencies: Sequence[float] | np.ndarray
) -> dict[str, Any]:
    """Mean of each metric over the questions where it applies, plus latency percentiles."""
    out: dict[str, Any] = {}
    for k in METRICS:
        vals = np.array([r[k] for r in rows], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        out[k] = round(float(vals.mean()), 4) if len(vals) else None
    lat = np.asarray(latencies, dtype=np.float64)
    out["p50_ms"] = round(float(np.percentile(lat, 50)), 3) if len(lat) else None
    out["p99_ms"] = round(float(np.percentile(lat, 99)), 3) if len(lat) else None
    return out


def _router_rows(
    index: Index, col: Collected, weights: np.ndarray, strategy: str, extra_ms: np.ndarray
) -> tuple[list[dict[str, float]], list[float], list[str]]:
    rows, lats, chosen = [], [], []
    for i, q in enumerate(col.questions):
        t = time.perf_counter()
        hits, picked = routed_hits(
            index, col.queries[i], col.rankings[i], weights[i], col.names, col.budget, strategy
        )
        took = 1000 * (time.perf_counter() - t)
        rows.append(score_hits(hits, q))
        lats.append(col.embed_ms + col.rank_ms[i] + extra_ms[i] + took)
        chosen.append(picked[0])
    return rows, lats, chosen


def _rrf_rows(index: Index, col: Collected) -> tuple[list[dict[str, float]], list[float]]:
    rows, lats = [], []
    for i, q in enumerate(col.questions):
        t = time.perf_counter()
        query, rankings = col.queries[i], col.rankings[i]
        hits = assemble(index.snapshot, query, rrf_picks(rankings), col.budget,
                        sims=query_sims(index.snapshot, query.vector, rankings))
        rows.append(score_hits(hits, q))
        lats.append(col.embed_ms + col.rank_ms[i] + 1000 * (time.perf_counter() - t))
    return rows, lats


def _weights_of(
    router: Router, index: Index, col: Collected
) -> tuple[np.ndarray, np.ndarray]:
    ws, ms = [], []
    for i in range(len(col.questions)):
        t = time.perf_counter()
        ws.append(router.weights(index, col.queries[i], col.rankings[i], col.names))
        ms.append(1000 * (time.perf_counter() - t))
    return np.array(ws), np.array(ms)


def fit_router(
    x: np.ndarray, scores: np.ndarray, targets: np.ndarray, names: Sequence[str],
    name: str, model: str, loss: str = "ce", seed: int = 0,
) -> TrainedRouter:
    """Train one router: ridge regresses raw scores, prior is their mean (the same weights
    for every query), the others fit soft labels."""
    if model in ("ridge", "prior"):
        alpha = np.inf if model == "prior" else None
        return train_ridge_router(x, scores, names, name=name, alpha=alpha, seed=seed)
    return train_router(x, targets, names, name=name, model=model, loss=loss, seed=seed)


def cross_validated_weights(
    col: Collected, folds: int, model: str, seed: int = 0, labels: str = "softmax"
) -> tuple[np.ndarray, np.ndarray]:
    """Router weights for every question from a router that never saw it (K-fold)."""
    n = len(col.questions)
    if folds < 2 or folds > n:
        raise MogragError(f"--folds must be between 2 and the number of questions ({n})")
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % folds
    scores = col.scores()
    targets = soft_labels(scores, labels)
    weights = np.zeros((n, len(col.names)))
    ms = np.zeros(n)
    for k in range(folds):
        train, test = fold_of != k, fold_of == k
        r = fit_router(col.features[train], scores[train], targets[train], col.names,
                       name=f"cv-{model}", model=model, seed=seed)
        t = time.perf_counter()
        weights[test] = r.predict(col.features[test])
        ms[test] = 1000 * (time.perf_counter() - t) / max(int(test.sum()), 1)
    return weights, ms


@dataclass
class EvalOutcome:
    """Results per budget (the JSON contract) plus per-question detail for reports."""

    results: list[dict[str, Any]]
    skipped: list[str] = field(default_factory=list)
    detail: list[dict[str, Any]] = field(default_factory=list)


def evaluate(
    index: Index,
    questions: Sequence[Question],
    budgets: Sequence[int] = (256,),
    mode: str = "hybrid",
    routers: Sequence[str] | None = None,
    folds: int | None = None,
    train_questions: Sequence[Question] | None = None,
    strategies: Sequence[str] = WEIGHT_STRATEGIES,
    progress: Progress = no_progress,
    skipped: int = 0,
) -> EvalOutcome:
    """Score every system at every budget.

    BLAS runs single-threaded here: thousands of small matrix-vector products gain
    nothing from threads and lose a lot when the cores are busy.
    """
    if not questions:
        raise MogragError("no valid questions to evaluate")
    with threadpool_limits(1, user_api="blas"):
        return _evaluate_all(index, questions, budgets, mode, routers, folds, train_questions,
                             strategies, progress, skipped)


def _evaluate_all(
    index: Index,
    questions: Sequence[Question],
    budgets: Sequence[int],
    mode: str,
    routers: Sequence[str] | None,
    folds: int | None,
    train_questions: Sequence[Question] | None,
    strategies: Sequence[str],
    progress: Progress,
    skipped: int,
) -> EvalOutcome:
    queries, embed_ms = encode_timed(index, questions)
    train_queries = encode_timed(index, train_questions)[0] if train_questions else None
    outcome = EvalOutcome(results=[])
    for budget in budgets:
        col = collect(index, questions, budget, mode, progress, queries, embed_ms)
        systems: dict[str, Any] = {}
        detail: dict[str, Any] = {"budget": budget, "per_question": {}}
        for g, name in enumerate(col.names):
            rows = [m[g] for m in col.metrics]
            systems[name] = summarize(rows, col.latency_ms[:, g])
            detail["per_question"][name] = [r["recall"] for r in rows]
        level_names = [n for n in col.names if n.startswith("level:")]
        best = max(level_names, key=lambda n: (systems[n]["recall"] or 0.0))
        systems["best_fixed"] = {"level": best, **systems[best]}
        best_g = max(col.names, key=lambda n: (systems[n]["recall"] or 0.0))
        systems["best_fixed_granularity"] = {"granularity": best_g, **systems[best_g]}
        rows, lats = _rrf_rows(index, col)
        systems[RRF_LEVELS] = summarize(rows, lats)
        detail["per_question"][RRF_LEVELS] = [r["recall"] for r in rows]
        scores = col.scores()
        oracle_g = np.argmax(scores, axis=1)
        o_rows = [col.metrics[i][g] for i, g in enumerate(oracle_g.tolist())]
        systems["oracle"] = summarize(o_rows, col.latency_ms[np.arange(len(o_rows)), oracle_g])
        detail["oracle_choice"] = [col.names[g] for g in oracle_g.tolist()]
        detail["per_question"]["oracle"] = [r["recall"] for r in o_rows]
        router_weights: list[tuple[str, np.ndarray, np.ndarray]] = []
        w, ms = _weights_of(EntropyRouter(budget), index, col)
        router_weights.append(("entropy", w, ms))
        shipped = default_router_for(index)
        if shipped is not None:
            w, ms = _weights_of(cast(Router, shipped), index, col)
            router_weights.append(("shipped", w, ms))
        for spec in routers or []:
            w, ms = _weights_of(load_router(index, spec, budget), index, col)
            router_weights.append((spec, w, ms))
        if folds:
            for model in ROUTER_MODELS:
                w, ms = cross_validated_weights(col, folds, model)
                router_weights.append((f"cv-{model}", w, ms))
        if train_questions:
            tcol = collect(index, train_questions, budget, mode, progress, train_queries)
            tscores = tcol.scores()
            targets = soft_labels(tscores)
            for model in ROUTER_MODELS:
                r = fit_router(tcol.features, tscores, targets, tcol.names,
                               name=f"xfer-{model}", model=model)
                t = time.perf_counter()
                w = r.predict(col.features)
                ms = np.full(len(col.questions), 1000 * (time.perf_counter() - t) / len(w))
                router_weights.append((f"xfer-{model}", w, ms))
        # the gap a router can close: best fixed granularity (levels and graph) to oracle
        ref = systems["best_fixed_granularity"]["recall"] or 0.0
        gap = (systems["oracle"]["recall"] or 0.0) - ref
        rrf = systems[RRF_LEVELS]
        if gap > 0 and rrf["recall"] is not None:
            rrf["gap_closed"] = round((rrf["recall"] - ref) / gap, 4)
        for rname, w, ms in router_weights:
            # the shipped model's own strategy (the default search) is span selection
            extra = ("spans",) if rname == "shipped" and "spans" not in strategies else ()
            for strategy in (*strategies, *extra):
                key = f"router:{rname}" + ("" if strategy == "argmax" else f"+{strategy}")
                rows, lats, chosen = _router_rows(index, col, w, strategy, ms)
                s = summarize(rows, lats)
                s["route_ms"] = round(float(np.mean(ms)), 4)
                if gap > 0 and s["recall"] is not None:
                    s["gap_closed"] = round((s["recall"] - ref) / gap, 4)
                if strategy == "argmax":
                    s["chosen"] = {n: chosen.count(n) for n in col.names if chosen.count(n)}
                systems[key] = s
                detail["per_question"][key] = [r["recall"] for r in rows]
        result = {
            "questions": len(questions),
            "skipped": skipped,
            "budget": budget,
            "mode": mode,
            "systems": systems,
        }
        outcome.results.append(result)
        outcome.detail.append(detail)
    return outcome
