"""Per-question data of the dev sets for granularity-model work, computed once.

For each set (index built once under ``$MOGRAG_CACHE``, graph on): every question's
rankings at every level, its transferable features and every granularity's score at
the budget, saved to ``$MOGRAG_CACHE/transfer/<set>-<budget>.npz``. Models are then fitted
and compared from these files in seconds; systems that need the index (blends) rebuild
the rankings from the stored arrays instead of searching again.

Usage: python bench/transfer_data.py [--sets a,b] [--budget 256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from mograg.eval.commands import doc_lengths, index_docs_cached
from mograg.eval.evaluate import collect
from mograg.eval.questions import load_questions
from mograg.eval.synthetic import Shape
from mograg.index.core import Index
from mograg.retrieval.rank import make_query
from mograg.retrieval.signals import graph_context, named_doc_count, transfer_features
from mograg.types import LevelRanking, Query

ROOT = Path(__file__).resolve().parents[1]
EVALSETS = ROOT.parent / "shared" / "evalsets"
SETS = ("chroma-dev", "hotpotqa-dev", "hotpotqa-train", "musique-train", "clapnq-dev",
        "squad-dev", "medquad-dev")
LIMITS = {"squad-dev": 1000, "medquad-dev": 1000}
N_CAND = 50


def data_dir() -> Path:
    """Where the per-set files live."""
    base = os.environ.get("MOGRAG_CACHE") or Path.home() / ".cache" / "mograg"
    return Path(base) / "transfer"


def open_set(name: str) -> Index:
    """The set's cached index, with its graph; with document context only when
    ``MOGRAG_BENCH_CONTEXT=1`` (as for ``mograg index``, off by default; give the two kinds
    different ``MOGRAG_CACHE`` directories, their transfer data share file names)."""
    context = os.environ.get("MOGRAG_BENCH_CONTEXT", "0") == "1"
    return index_docs_cached(EVALSETS / name / "docs.jsonl.gz", graph=True, context=context)


def set_questions(name: str, index: Index) -> list:
    """The set's questions (first 1,000 for the big sets)."""
    qs, _ = load_questions(EVALSETS / name / "questions.jsonl.gz", doc_lengths(index))
    return qs[: LIMITS.get(name, len(qs))]


def dump_set(name: str, budget: int) -> Path:
    """Collect one set and save its arrays."""
    ix = open_set(name)
    qs = set_questions(name, ix)
    t0 = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        col = collect(ix, qs, budget)
        graph, links = graph_context(ix)
        snap = ix.snapshot
        feats = [transfer_features(snap, q, r, named_doc_count(snap, graph, q), links)
                 for q, r in zip(col.queries, col.rankings, strict=True)]
    n, n_lv = len(qs), len(ix.levels)
    arrays: dict[str, Any] = {f"r_{k}": np.full((n, n_lv, N_CAND), -1 if k == "ids" else 0.0,
                                np.int64 if k == "ids" else np.float32)
              for k in ("ids", "scores", "dense", "bm25")}
    for i, rankings in enumerate(col.rankings):
        for j, r in enumerate(rankings):
            for k in ("ids", "scores", "dense", "bm25"):
                v = getattr(r, k)
                arrays[f"r_{k}"][i, j, : len(v)] = v
    recall = np.array([[m["recall"] for m in row] for row in col.metrics], np.float64)
    iou = np.array([[m["iou"] for m in row] for row in col.metrics], np.float64)
    answer = np.array([[m["answer_recall"] for m in row] for row in col.metrics], np.float64)
    out = data_dir() / f"{name}-{budget}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"set": name, "budget": budget, "names": col.names, "index": str(ix.root),
            "questions": [q.question for q in qs], "ids": [q.id for q in qs],
            "seconds": round(time.perf_counter() - t0, 1)}
    np.savez_compressed(
        out, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
        x=np.array(feats), scores=col.scores(), recall=recall, iou=iou, answer=answer,
        vectors=np.array([q.vector for q in col.queries], np.float32),
        n_tokens=np.array([q.n_tokens for q in col.queries], np.int64), **arrays,
    )
    return out


def load_set(name: str, budget: int = 256) -> dict:
    """The saved arrays of one set (``meta`` decoded)."""
    with np.load(data_dir() / f"{name}-{budget}.npz", allow_pickle=False) as z:
        d = {k: np.array(z[k]) for k in z.files}
    d["meta"] = json.loads(bytes(d["meta"]).decode())
    return d


def rebuild(d: dict, i: int) -> tuple[Query, list[LevelRanking]]:
    """Question ``i``'s query and rankings as a search would have made them."""
    q = make_query(d["meta"]["questions"][i], d["vectors"][i], int(d["n_tokens"][i]))
    rankings = []
    for j in range(d["r_ids"].shape[1]):
        keep = d["r_ids"][i, j] >= 0
        rankings.append(LevelRanking(j, d["r_ids"][i, j][keep], d["r_scores"][i, j][keep],
                                     d["r_dense"][i, j][keep], d["r_bm25"][i, j][keep]))
    return q, rankings


def main() -> None:
    """Dump the sets named on the command line (default all seven)."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--budget", type=int, default=256)
    args = ap.parse_args()
    if not EVALSETS.exists():
        print(f"no eval sets at {EVALSETS}; nothing to do", file=sys.stderr)
        return
    for name in args.sets.split(","):
        t0 = time.perf_counter()
        path = dump_set(name, args.budget)
        print(json.dumps({"set": name, "file": str(path),
                          "seconds": round(time.perf_counter() - t0, 1),
                          "loadavg": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()


def dump_synthetic(name: str, budget: int = 256, n: int = 200, seed: int = 0,
                   shape: Shape = "sentence") -> Path:
    """Collect ``mograg tune``'s synthetic questions for one set: query features and
    scores, and their span candidates (``span_q``: their question) with evidence shares."""
    from mograg.eval.synthetic import synthetic_questions
    from mograg.retrieval.granularity_model import ModelRouter, shipped_model
    from mograg.retrieval.routing import granularity_picks
    from mograg.retrieval.spans import evidence_share, query_candidates

    ix = open_set(name)
    qs = synthetic_questions(ix, n, seed, shape=shape)
    model = shipped_model()
    assert model is not None, "the shipped model is missing"
    router = ModelRouter(model)  # only its feature code is used
    sx: list[np.ndarray] = []
    sy: list[np.ndarray] = []
    sq: list[np.ndarray] = []
    with threadpool_limits(1, user_api="blas"):
        col = collect(ix, qs, budget)
        x = np.array([router.features(ix, q, r)
                      for q, r in zip(col.queries, col.rankings, strict=True)])
        for q, r, question in zip(col.queries, col.rankings, qs, strict=True):
            per = [granularity_picks(ix, q, r, nm) for nm in col.names]
            cands = query_candidates(ix, q, r, per)
            sx.append(cands.x.astype(np.float32))
            sy.append(evidence_share(ix.snapshot, cands, question.evidence))
            sq.append(np.full(len(cands.level), len(sq)))
    out = data_dir() / f"{name}-{synthetic_kind(shape)}-{budget}.npz"
    np.savez_compressed(out, x=x, scores=col.scores(), span_x=np.concatenate(sx),
                        span_y=np.concatenate(sy), span_q=np.concatenate(sq),
                        evidence_tokens=np.array([_evidence_tokens(ix, q) for q in qs]))
    return out


def _load_or_dump(kind: str, name: str, budget: int, dump: Callable[[str, int], Path]) -> dict:
    path = data_dir() / f"{name}-{kind}-{budget}.npz"
    if not path.exists():
        dump(name, budget)
    with np.load(path, allow_pickle=False) as z:
        return {k: np.array(z[k]) for k in z.files}


def synthetic_kind(shape: Shape) -> str:
    """File-name part of one shape's synthetic data (``sentence``: the first, unsuffixed)."""
    return "synthetic" if shape == "sentence" else f"synthetic-{shape}"


def _evidence_tokens(ix: Index, q: Any) -> int:
    snap = ix.snapshot
    (doc_id, start, end), = q.evidence
    atoms = snap.atoms
    m = (atoms["doc"] == snap.doc_index[doc_id]) & (atoms["start"] >= start) & (atoms["end"] <= end)
    return int(atoms["n_tokens"][m].sum())


def load_synthetic(name: str, budget: int = 256, shape: Shape = "sentence") -> dict:
    """Features and scores of a set's synthetic questions of one shape (made if missing)."""
    return _load_or_dump(synthetic_kind(shape), name, budget,
                         lambda n, b: dump_synthetic(n, b, shape=shape))


def dump_spans(name: str, budget: int = 256) -> Path:
    """Every question's span candidates, their features and evidence shares."""
    from _transfer_eval import SetRunner
    from mograg.retrieval.spans import evidence_share, query_candidates

    runner = SetRunner(name, budget)
    snap = runner.index.snapshot
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("x", "y", "q", "level", "chunk")}
    with threadpool_limits(1, user_api="blas"):
        for i in range(runner.n):
            q, rankings = runner.query(i)
            cands = query_candidates(runner.index, q, rankings, runner.picks(i))
            parts["x"].append(cands.x.astype(np.float32))
            parts["y"].append(evidence_share(snap, cands, runner.questions[i].evidence))
            parts["q"].append(np.full(len(cands.level), i))
            parts["level"].append(cands.level)
            parts["chunk"].append(cands.chunk)
    out = data_dir() / f"{name}-spans-{budget}.npz"
    arrays: dict[str, Any] = {k: np.concatenate(v) for k, v in parts.items()}
    np.savez_compressed(out, **arrays)
    return out


def load_spans(name: str, budget: int = 256) -> dict:
    """A set's span candidates (made if missing); ``keep`` marks questions with evidence."""
    d = _load_or_dump("spans", name, budget, dump_spans)
    recall = load_set(name, budget)["recall"]
    d["keep"] = ~np.isnan(recall[:, 0])[d["q"]]
    return d
