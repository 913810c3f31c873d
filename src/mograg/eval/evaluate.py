"""`mograg eval`: retrieval quality per granularity, best fixed level, oracle and routers.

Every system fills the same token budget and is scored by the same code
(:mod:`mograg.eval.metrics`), so the numbers are comparable.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from mograg import __version__
from mograg.errors import MogragError
from mograg.eval.metrics import answer_found, reciprocal_rank, span_scores
from mograg.eval.questions import Question, load_questions
from mograg.graph.build import GraphSettings, parse_graph_name
from mograg.index.core import Index, no_progress
from mograg.retrieval.rank import LevelRanking, Query, assemble, rank_level
from mograg.retrieval.routers import (
    EntropyRouter,
    Router,
    TrainedRouter,
    features,
    load_router,
    soft_labels,
    train_ridge_router,
    train_router,
)
from mograg.retrieval.routing import STRATEGIES, granularity_names, granularity_picks, routed_hits
from mograg.store.lexical import is_current
from mograg.store.storage import FORMAT_VERSION
from mograg.types import Hit

Progress = Callable[[str, int, int], None]
METRICS = ("recall", "precision", "iou", "answer_recall", "mrr")
ROUTER_MODELS = ("ridge", "prior", "mlp", "softmax")



def score_hits(hits: Sequence[Hit], q: Question) -> dict[str, float]:
    """All metrics of one question's hits (answer_recall is NaN without answers)."""
    spans = [(h.doc_id, h.start, h.end) for h in hits]
    recall, precision, iou = span_scores(spans, q.evidence)
    ans = float(answer_found(" ".join(h.text for h in hits), q.answers)) if q.answers else np.nan
    rr = reciprocal_rank(spans, q.evidence) if q.evidence else np.nan
    if not q.evidence:
        recall = precision = iou = np.nan
    return {"recall": recall, "precision": precision, "iou": iou, "answer_recall": ans, "mrr": rr}


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
    names = granularity_names(index)
    n_lv = len(index.levels)
    # the level each granularity ranks (a graph granularity expands one level's ranking)
    base = [g if g < n_lv else index.level_index(parse_graph_name(n)[0])  # type: ignore[index]
            for g, n in enumerate(names)]
    snap = index.snapshot
    if queries is None:
        queries, embed_ms = encode_timed(index, questions)
    embed_ms = embed_ms or 0.0
    all_rank, feats, metrics = [], [], []
    lat = np.zeros((len(questions), len(names)))
    rank_ms = np.zeros(len(questions))
    for i, (q, query) in enumerate(zip(questions, queries, strict=True)):
        rankings, level_ms = [], []
        for j in range(n_lv):
            t = time.perf_counter()
            rankings.append(rank_level(snap, j, query, mode))
            level_ms.append(1000 * (time.perf_counter() - t))
        rank_ms[i] = sum(level_ms)
        row = []
        for g, name in enumerate(names):
            t = time.perf_counter()
            hits = assemble(snap, query, granularity_picks(index, query, rankings, name), budget)
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


def summarize(rows: Sequence[dict[str, float]], latencies: Sequence[float]) -> dict[str, Any]:
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
    strategies: Sequence[str] = STRATEGIES,
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
        scores = col.scores()
        oracle_g = np.argmax(scores, axis=1)
        o_rows = [col.metrics[i][g] for i, g in enumerate(oracle_g.tolist())]
        systems["oracle"] = summarize(o_rows, col.latency_ms[np.arange(len(o_rows)), oracle_g])
        detail["oracle_choice"] = [col.names[g] for g in oracle_g.tolist()]
        detail["per_question"]["oracle"] = [r["recall"] for r in o_rows]
        router_weights: list[tuple[str, np.ndarray, np.ndarray]] = []
        w, ms = _weights_of(EntropyRouter(budget), index, col)
        router_weights.append(("entropy", w, ms))
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
        gap = (systems["oracle"]["recall"] or 0.0) - (systems["best_fixed"]["recall"] or 0.0)
        for rname, w, ms in router_weights:
            for strategy in strategies:
                key = f"router:{rname}" + ("" if strategy == "argmax" else f"+{strategy}")
                rows, lats, chosen = _router_rows(index, col, w, strategy, ms)
                s = summarize(rows, lats)
                s["route_ms"] = round(float(np.mean(ms)), 4)
                if gap > 0 and s["recall"] is not None:
                    s["gap_closed"] = round(
                        (s["recall"] - systems["best_fixed"]["recall"]) / gap, 4
                    )
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


def _doc_lengths(index: Index) -> dict[str, int]:
    snap = index.snapshot
    return {d: len(snap.text(i)) for i, d in enumerate(snap.doc_ids)}


def train_router_command(
    index: str | Path,
    questions: str | Path,
    name: str = "default",
    budget: int = 256,
    mode: str = "hybrid",
    model: str = "ridge",
    loss: str = "ce",
    labels: str = "softmax",
    limit: int | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Train a router on questions with gold evidence/answers and save it in the index."""
    from mograg.retrieval.routers import save_router

    ix = Index.open(index)
    qs, problems = load_questions(questions, _doc_lengths(ix))
    if limit:
        qs = qs[:limit]
    if len(qs) < 2:
        raise MogragError(f"{questions}: need at least 2 valid questions to train a router")
    col = collect(ix, qs, budget, mode, progress)
    scores = col.scores()
    with threadpool_limits(1, user_api="blas"):
        router = fit_router(col.features, scores, soft_labels(scores, labels), col.names,
                            name=name, model=model, loss=loss)
    router.meta.update({"budget": budget, "mode": mode, "labels": labels,
                        "questions_file": str(questions)})
    save_router(ix, router)
    return {
        "router": name,
        "granularities": col.names,
        "trained_on": len(qs),
        "skipped": len(problems),
        "problems": problems[:20],
        "meta": router.meta,
    }


def cache_root() -> Path:
    """Where `mograg eval --docs` keeps indexes (``MOGRAG_CACHE`` or ~/.cache/mograg)."""
    import os

    base = os.environ.get("MOGRAG_CACHE") or Path.home() / ".cache" / "mograg"
    return Path(base) / "eval-indexes"


def index_docs_cached(
    docs: str | Path,
    levels: Sequence[int] | str | None = None,
    level_vectors: str = "pool",
    progress: Progress = no_progress,
    graph: bool = False,
) -> Index:
    """Index a docs.jsonl(.gz) file once; later runs with the same bytes and settings reuse it."""
    from mograg.text.documents import load_documents
    from mograg.text.levels import DEFAULT_LEVELS, parse_levels

    path = Path(docs)
    if not path.exists():
        raise MogragError(f"{path}: no such file; give a docs .jsonl or .jsonl.gz file")
    sizes = parse_levels(levels) if levels else DEFAULT_LEVELS
    h = hashlib.sha256()
    h.update(path.read_bytes())
    h.update(repr((sizes, level_vectors, FORMAT_VERSION, __version__)).encode())
    target = cache_root() / h.hexdigest()[:24]
    if (target / "manifest.json").exists():
        ix = Index.open(target)
        lexical = ix.manifest.get("derived", {}).get("lexical")
        if lexical and not is_current(target / "lexical" / lexical):
            ix.upgrade(progress)  # cached by an older version
        stale = (ix.manifest.get("graph") != GraphSettings().to_dict()
                 or "link_targets" not in (ix.manifest.get("graph_stats") or {}))
        if graph and stale:
            ix.enable_graph(progress=progress)  # none yet, or built by an older version
        elif not graph and ix.manifest.get("graph"):
            # an earlier --graph run added it to the cached index: score the levels only
            manifest = {k: v for k, v in ix.manifest.items() if k != "graph"}
            manifest["derived"] = {k: v for k, v in manifest.get("derived", {}).items()
                                   if k != "graph"}
            ix = Index(ix.root, manifest)
        return ix
    documents, problems = load_documents([path])
    if problems:
        raise MogragError(f"{problems[0]} ({len(problems)} problem(s) in {path})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        ix = Index.create(tmp / "ix", levels=sizes, level_vectors=level_vectors, graph=graph)
        ix.add(documents, progress=progress)
        (tmp / "ix").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Index.open(target)


def run_eval_command(
    questions: str | Path,
    index: str | Path | None = None,
    docs: str | Path | None = None,
    budgets: Sequence[int] = (256,),
    mode: str = "hybrid",
    limit: int | None = None,
    folds: int | None = None,
    train_questions: str | Path | None = None,
    routers: Sequence[str] | None = None,
    levels: str | None = None,
    graph: bool = False,
    progress: Progress = no_progress,
    generator: Any = None,
    generate_limit: int | None = None,
) -> EvalOutcome:
    """Everything `mograg eval` does apart from printing.

    With ``generator`` (see :mod:`mograg.answer.generate`), answers are also generated from the
    best fixed level's and the routers' contexts and scored (EM / token F1).
    """
    if (index is None) == (docs is None):
        raise MogragError("give exactly one of --index DIR or --docs DOCS.jsonl.gz")
    if index is not None:
        ix = Index.open(index)
        if graph and not ix.manifest.get("graph"):
            raise MogragError(f"index {index} has no graph; rebuild it with mograg index --graph")
    else:
        ix = index_docs_cached(docs, levels, progress=progress, graph=graph)
    lengths = _doc_lengths(ix)
    qs, problems = load_questions(questions, lengths)
    if limit:
        qs = qs[:limit]
    answerable = [q for q in qs if q.answers]
    if generator is not None:
        if not answerable:
            raise MogragError(
                f"{questions}: no question has reference answers; --generate needs a set "
                "with answers (e.g. squad-dev, hotpotqa-dev)"
            )
        if generate_limit:
            answerable = answerable[:generate_limit]
    train = None
    if train_questions:
        train, _ = load_questions(train_questions, lengths)
    outcome = evaluate(ix, qs, budgets, mode, routers=routers, folds=folds,
                       train_questions=train, progress=progress, skipped=len(problems))
    if generator is not None:
        from mograg.answer.generate import evaluate_answers

        for result in outcome.results:
            systems = [result["systems"]["best_fixed"]["level"], "router:entropy"]
            systems += [f"router:{r}" for r in routers or [] if f"router:{r}" not in systems]
            result["answers"] = evaluate_answers(
                ix, answerable, generator, systems, budget=result["budget"], mode=mode,
                progress=progress,
            )
    outcome.skipped = problems
    return outcome
