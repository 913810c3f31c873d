"""Several knowledge sources in one index: two dev sets indexed together vs each alone.

Two dev sets that want different sizes (default squad-dev, best at 64 tokens, and
clapnq-dev, best at 256-512) are indexed alone and together (the combined index names
each document's source, as ``mograg index --source NAME`` does; every index uses the
same vectors, reused by content hash from the eval cache). For each set's questions
(budget 256, hybrid, graph on; first ``--questions`` of each) it reports recall of:

- every granularity, the set's best fixed granularity, and in the combined index the
  best single granularity for both sets' questions together;
- ``default``: the shipped span model (source-blind by construction), and
  ``default-source-features``: the same model with every span feature computed within
  the candidate's own source (each source's rankings treated as a corpus of their own);
- ``tuned``: ``mograg tune --per-source`` (``--tune`` synthetic questions from each source) with its
  per-source offsets (``tuned-per-source``) and without them (``tuned-blind``, the same
  questions fitted with one offset per level);
- ``labels``: the same adaptation fitted on the sets' real questions, 5-fold
  (``labels-per-source`` vs ``labels-blind``), i.e. what ``train-router --model shipped
  [--per-source]`` gets from knowing the source.

Usage: python bench/sources.py [--sets a,b] [--questions 1000] [--tune 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from _output import emit
from mograg.eval.commands import doc_lengths, index_docs_cached
from mograg.eval.evaluate import collect, score_hits
from mograg.eval.questions import Question, load_questions
from mograg.eval.tune import (
    adapt,
    adapt_sources,
    adapt_span_sources,
    adapt_spans,
    question_sources,
    tune_index,
)
from mograg.index.core import Index
from mograg.index.segments import SegmentBuilder, WriteReport, existing_vectors
from mograg.index.settings import IndexSettings
from mograg.retrieval.granularity_model import ModelRouter, default_router_for
from mograg.retrieval.routers import load_router
from mograg.retrieval.routing import granularity_picks, routed_hits
from mograg.retrieval.sources import SOURCE_KEY, index_sources
from mograg.retrieval.spans import evidence_share, query_candidates
from mograg.store.storage import MANIFEST
from mograg.text.documents import load_documents

ROOT = Path(__file__).resolve().parents[1]
EVALSETS = ROOT.parent / "shared" / "evalsets"
FOLDS = 5


def cache_dir() -> Path:
    base = os.environ.get("MOGRAG_CACHE") or Path.home() / ".cache" / "mograg"
    return Path(base) / "sources"


def build(name: str, sets: list[str], labelled: bool) -> Index:
    """An index of ``sets``' documents (source-labelled when ``labelled``), built once,
    reusing the vectors of each set's eval-cache index."""
    path = cache_dir() / name
    if (path / MANIFEST).exists():
        return Index.open(path)
    known: dict[bytes, np.ndarray] = {}
    docs = []
    for s in sets:
        known.update(existing_vectors(index_docs_cached(EVALSETS / s / "docs.jsonl.gz",
                                                        graph=True).snapshot))
        got, problems = load_documents([EVALSETS / s / "docs.jsonl.gz"])
        assert not problems, problems
        docs += [replace(d, metadata={**d.metadata, SOURCE_KEY: s}) if labelled else d
                 for d in got]
    ids = [d.id for d in docs]
    assert len(set(ids)) == len(ids), "document ids collide between the sets"
    ix = Index.create(path, settings=IndexSettings.from_options(graph=True))
    seg = SegmentBuilder(ix.manifest, ix.embedder, lambda keys: known).build(docs, WriteReport())
    assert seg is not None
    ix.commit_segment(seg)
    return Index.open(path)


def questions(s: str, index: Index, limit: int) -> list[Question]:
    """The set's first ``limit`` questions with gold evidence (recall is measured on them)."""
    qs, _ = load_questions(EVALSETS / s / "questions.jsonl.gz", doc_lengths(index))
    return [q for q in qs if q.evidence][:limit]


def recall_of(router: ModelRouter, index: Index, col: Any, rows: list[int]) -> np.ndarray:
    """Each question's recall under ``router`` (auto strategy: spans)."""
    out = np.zeros(len(rows))
    for k, i in enumerate(rows):
        q, r = col.queries[i], col.rankings[i]
        w = router.weights(index, q, r, col.names)
        hits, _ = routed_hits(index, q, r, w, col.names, col.budget, "auto",
                              span_model=router.span_model)
        out[k] = score_hits(hits, col.questions[i])["recall"]
    return out


def source_features_recall(router: ModelRouter, index: Index, col: Any,
                           rows: list[int]) -> np.ndarray:
    """Each question's recall when every span feature is computed within the candidate's
    own source (each source's rankings scored as if it were a corpus of its own), then
    all sources' candidates ordered by the estimate, hedged as the default is."""
    from mograg.graph.walk import named_seeds
    from mograg.retrieval.rank import assemble
    from mograg.retrieval.routing import blend_picks
    from mograg.retrieval.signals import graph_context, named_doc_count, question_features
    from mograg.retrieval.spans import HEDGE_SHARE, candidate_features, span_picks
    from mograg.types import LevelRanking

    snap = index.snapshot
    srcs = index_sources(snap)
    model = router.span_model
    assert model is not None
    graph, _ = graph_context(index)

    def in_source(j: int, ids: np.ndarray, s: int) -> np.ndarray:
        return srcs.of_doc[snap.atoms["doc"][snap.levels[j]["first_atom"][ids]]] == s

    out = np.zeros(len(rows))
    for k, i in enumerate(rows):
        q, r = col.queries[i], col.rankings[i]
        per = [granularity_picks(index, q, r, nm) for nm in col.names]
        named: set[tuple[int, int]] = set()
        if graph is not None:
            for j in range(len(r)):
                named.update((j, c) for c in named_seeds(snap, graph, q, j))
        qf = np.array(question_features(q.text, named_doc_count(snap, graph, q), q.n_tokens))
        picks = []
        for s in range(len(srcs.names)):
            rs = []
            for j, rk in enumerate(r):
                m = in_source(j, rk.ids, s)
                rs.append(LevelRanking(rk.level, rk.ids[m], rk.scores[m],
                                       rk.dense[m] if len(rk.dense) else rk.dense,
                                       rk.bm25[m] if len(rk.bm25) else rk.bm25))
            ps = [[p for p in g if in_source(p.level, np.array([p.chunk]), s)[0]] for g in per]
            cands = candidate_features(snap, q.vector, rs, ps, named, qf)
            picks += span_picks(cands, model.score(cands))
        picks.sort(key=lambda p: (-p.score, p.level))
        best = int(np.argmax(router.weights(index, q, r, col.names)))
        mixed = blend_picks(snap, [picks, per[best]], np.array([1.0 - HEDGE_SHARE, HEDGE_SHARE]))
        out[k] = score_hits(assemble(snap, q, mixed, col.budget), col.questions[i])["recall"]
    return out


def blind(router: ModelRouter) -> ModelRouter:
    """``router`` without its per-source parts."""
    spans = router.span_model
    if spans is not None:
        spans = replace(spans, source_offset=np.zeros((0, 0)), sources=())
    return ModelRouter(replace(router.model, source_intercept=np.zeros((0, 0)), sources=()),
                       router.name + "-blind", spans)


def label_systems(index: Index, col: Any, q_set: np.ndarray, names: list[str],
                  seed: int = 0) -> dict[str, np.ndarray]:
    """5-fold: the shipped models adapted on the real questions of four folds, with and
    without per-source offsets, tested on the fifth."""
    base = default_router_for(index)
    assert base is not None and base.span_model is not None
    snap = index.snapshot
    n = len(col.questions)
    x = np.array([base.features(index, q, r) for q, r in zip(col.queries, col.rankings,
                                                              strict=True)])
    scores = col.scores()
    cands = [query_candidates(index, q, r, [granularity_picks(index, q, r, nm)
                                            for nm in col.names])
             for q, r in zip(col.queries, col.rankings, strict=True)]
    shares = [evidence_share(snap, c, qq.evidence) for c, qq in zip(cands, col.questions,
                                                                     strict=True)]
    srcs = index_sources(snap)
    q_rows = question_sources(index, col.questions)
    fold = np.random.default_rng(seed).permutation(n) % FOLDS
    out = {"labels-blind": np.zeros(n), "labels-per-source": np.zeros(n)}
    n_lv = len(index.levels)
    for f in range(FOLDS):
        tr, te = np.flatnonzero(fold != f), np.flatnonzero(fold == f)
        model = adapt(base.model, x[tr], scores[tr])
        spans = adapt_spans(base.span_model, [cands[i] for i in tr], [shares[i] for i in tr],
                            n_lv)
        glob = ModelRouter(model, "labels", spans)
        out["labels-blind"][te] = recall_of(glob, index, col, te.tolist())
        if srcs.several:
            per = ModelRouter(
                adapt_sources(model, x[tr], scores[tr], q_rows[tr], srcs.names), "labels",
                adapt_span_sources(spans, [cands[i] for i in tr], [shares[i] for i in tr],
                                   srcs.of_doc, srcs.names, n_lv))
            out["labels-per-source"][te] = recall_of(per, index, col, te.tolist())
    if not srcs.several:
        del out["labels-per-source"]
    return out


def run_index(index: Index, sets: list[str], limit: int, n_tune: int, budget: int
              ) -> dict[str, Any]:
    """Every system's recall per set on one index."""
    qs, q_set = [], []
    for k, s in enumerate(sets):
        got = questions(s, index, limit)
        qs += got
        q_set += [k] * len(got)
    sel = np.array(q_set)
    t0 = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        col = collect(index, qs, budget)
        recall = np.array([[m["recall"] for m in row] for row in col.metrics])
        systems: dict[str, np.ndarray] = {}
        shipped = default_router_for(index)
        assert shipped is not None
        systems["default"] = recall_of(shipped, index, col, list(range(len(qs))))
        if index_sources(index.snapshot).several:
            systems["default-source-features"] = source_features_recall(
                shipped, index, col, list(range(len(qs))))
        summary = tune_index(index, n=n_tune, budget=budget, name="tuned", per_source=True)
        tuned = load_router(index, "tuned", budget)
        assert isinstance(tuned, ModelRouter)
        if index_sources(index.snapshot).several:
            systems["tuned-per-source"] = recall_of(tuned, index, col, list(range(len(qs))))
            systems["tuned-blind"] = recall_of(blind(tuned), index, col, list(range(len(qs))))
        else:
            systems["tuned"] = recall_of(tuned, index, col, list(range(len(qs))))
        systems.update(label_systems(index, col, sel, sets))
    seconds = time.perf_counter() - t0
    both = recall.mean(axis=0) if len(sets) > 1 else None
    per_set = {}
    for k, s in enumerate(sets):
        m = sel == k
        gran = recall[m].mean(axis=0)
        best = int(np.argmax(gran))
        row: dict[str, Any] = {
            "questions": int(m.sum()),
            "granularities": {nm: round(float(v), 4) for nm, v in zip(col.names, gran,
                                                                      strict=True)},
            "best_fixed_granularity": [col.names[best], round(float(gran[best]), 4)],
        }
        if both is not None:  # the one granularity best for both sets' questions together
            g = int(np.argmax(np.mean([recall[sel == kk].mean(axis=0)
                                       for kk in range(len(sets))], axis=0)))
            row["best_fixed_for_all_sets"] = [col.names[g], round(float(gran[g]), 4)]
        row.update({name: round(float(np.nanmean(v[m])), 4) for name, v in systems.items()})
        # paired differences on the same questions: mean and its standard error
        pairs = [("tuned-per-source", "tuned-blind"), ("labels-per-source", "labels-blind"),
                 ("default-source-features", "default")]
        row["paired"] = {f"{a} - {b}": [round(float(d.mean()), 4),
                                        round(float(d.std(ddof=1) / np.sqrt(len(d))), 4)]
                         for a, b in pairs if a in systems
                         for d in [systems[a][m] - systems[b][m]]}
        per_set[s] = row
    return {"sources": index_sources(index.snapshot).counts(), "seconds": round(seconds, 1),
            "tune": {k: summary[k] for k in ("questions", "prior_shift", "sources")
                     if k in summary},
            "sets": per_set}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="squad-dev,clapnq-dev")
    ap.add_argument("--questions", type=int, default=1000, help="first N of each set")
    ap.add_argument("--tune", type=int, default=200, help="synthetic questions per source")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    sets = args.sets.split(",")
    load_start = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, Any] = {"sets": sets, "budget": args.budget, "mode": "hybrid",
                              "questions_per_set": args.questions, "tune_per_source": args.tune,
                              "loadavg_start": load_start, "indexes": {}}
    for s in sets:
        ix = build(s, [s], labelled=False)
        result["indexes"][f"{s} alone"] = run_index(ix, [s], args.questions, args.tune,
                                                    args.budget)
        print(f"{s} alone done", file=sys.stderr)
    ix = build("+".join(sets), sets, labelled=True)
    result["indexes"]["together"] = run_index(ix, sets, args.questions, args.tune, args.budget)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out = args.out or str(ROOT / "bench" / "results" / f"sources-{'+'.join(sets)}.json")
    return emit(result, out)


if __name__ == "__main__":
    sys.exit(main())
