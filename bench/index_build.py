"""Index build cost and query latency: 1 level vs 5 levels, level vectors embedded vs pooled.

For one eval set (``docs.jsonl.gz`` + ``questions.jsonl.gz``) this builds fresh indexes in
temporary directories and prints ONE JSON object with, per configuration:

* build: seconds for ``Index.add`` (split, embed, pool, BM25, write), chunks, how many vectors
  were embedded vs pooled, index bytes on disk vs corpus bytes (and their ratio);
* latency: p50/p99 ms of ``Index.search(query, level=SIZE)`` per level over ``--questions``
  questions (query pre-encoded, so this is retrieval + assembly only), the routed default
  ``Index.search(query)`` (entropy router unless a trained one exists), the single-query
  embedding time, and an end-to-end ``Index.search("text")`` for the routed default;
* quality: recall / precision / IoU (character level, :func:`mograg.eval.evaluate.score_hits`)
  per level and for the routed default at ``--budget`` tokens, on the same questions.

Configurations (``--configs``, comma-separated):

* ``1level``   — levels=(128,), vectors embedded;
* ``embed``    — 5 levels, every level embedded directly where it fits the model
  (levels longer than the model's 256-piece window are still pooled from children);
* ``pool``     — 5 levels, only the finest level embedded, all coarser levels pooled;
* ``embed16``  — as ``embed`` with float16 vectors.

``os.getloadavg()`` is recorded before and after each build and query phase: the machine
this was written on has 2 cores shared with other jobs, so absolute times are noisy.

    PYTHONPATH=src python bench/index_build.py [--evalset ../shared/evalsets/chroma-dev]
        [--configs 1level,embed,pool] [--limit-docs N] [--questions 200] [--budget 256]
        [--out bench/results/index_build-chroma-dev.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from _output import emit  # noqa: E402
from mograg.eval.evaluate import score_hits, summarize  # noqa: E402
from mograg.eval.questions import Question, load_questions  # noqa: E402
from mograg.index.core import Index  # noqa: E402
from mograg.text.documents import load_documents  # noqa: E402

CONFIGS: dict[str, dict[str, Any]] = {
    "1level": {"levels": (128,), "level_vectors": "embed", "vector_dtype": "float32"},
    "embed": {"levels": (32, 64, 128, 256, 512), "level_vectors": "embed",
              "vector_dtype": "float32"},
    "pool": {"levels": (32, 64, 128, 256, 512), "level_vectors": "pool",
             "vector_dtype": "float32"},
    "embed16": {"levels": (32, 64, 128, 256, 512), "level_vectors": "embed",
                "vector_dtype": "float16"},
}


def load() -> list[float]:
    """1/5/15-minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def pct(values: list[float]) -> dict[str, float | None]:
    """p50 / p99 / mean in ms."""
    if not values:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None}
    a = np.asarray(values, dtype=np.float64)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def bytes_by_part(root: Path) -> dict[str, int]:
    """Index bytes grouped by file name (inside segments/) or top-level entry."""
    parts: dict[str, int] = {}
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(root).parts
        key = f"segments/*/{p.name}" if rel[0] == "segments" else rel[0]
        parts[key] = parts.get(key, 0) + p.stat().st_size
    return dict(sorted(parts.items(), key=lambda kv: -kv[1]))


def resolve_evalset(arg: str) -> Path:
    """A relative eval-set path is taken relative to the repository root."""
    p = Path(arg)
    return p if p.is_absolute() else (REPO / p).resolve()


def pick_questions(
    qs_path: Path, doc_lengths: dict[str, int], n: int, seed: int
) -> tuple[list[Question], int]:
    """``n`` questions (seeded sample) whose evidence lies in the indexed documents."""
    qs, problems = load_questions(qs_path, doc_lengths)
    rng = random.Random(seed)
    if len(qs) > n:
        qs = rng.sample(qs, n)
    return qs, len(problems)


def build_and_measure(
    name: str, cfg: dict[str, Any], docs: list, questions: list[Question], budget: int,
    workdir: Path,
) -> dict[str, Any]:
    """Build one configuration and measure it."""
    path = workdir / name
    out: dict[str, Any] = {"config": name, **{k: list(v) if isinstance(v, tuple) else v
                                              for k, v in cfg.items()}}
    ix = Index.create(path, levels=cfg["levels"], level_vectors=cfg["level_vectors"],
                      vector_dtype=cfg["vector_dtype"])
    t0 = time.perf_counter()
    ix.embedder.embed(["warm up the ONNX session"])  # model load kept out of build time
    out["model_load_seconds"] = round(time.perf_counter() - t0, 3)
    out["load_before_build"] = load()
    rep = ix.add(docs)
    out["load_after_build"] = load()
    info = ix.info()
    out["build"] = {
        "seconds": round(rep.seconds, 2),
        "chunks": rep.chunks,
        "chunks_per_level": info["chunks_per_level"],
        "embedded": rep.embedded,
        "reused": rep.reused,
        "pooled": rep.pooled,
        "index_bytes": info["bytes"],
        "corpus_bytes": info["corpus_bytes"],
        "bytes_ratio": round(info["bytes"] / max(info["corpus_bytes"], 1), 3),
        "bytes_by_part": bytes_by_part(path),
    }
    print(f"[{name}] built in {rep.seconds:.1f}s: {rep.chunks} chunks, "
          f"{rep.embedded} embedded, {rep.pooled} pooled, load {load()}", file=sys.stderr)

    ix = Index.open(path)  # a reader, as a user would open it
    texts = [q.question for q in questions]
    ix.encode_queries(texts[:2])  # warm up model + snapshot
    embed_ms = []
    for t in texts:
        t1 = time.perf_counter()
        ix.encode_queries([t])
        embed_ms.append(1000 * (time.perf_counter() - t1))
    queries = ix.encode_queries(texts)
    for lvl in ix.levels:  # warm every level's memory maps and BM25
        ix.search(queries[0], level=lvl, budget=budget)
    ix.search(queries[0], budget=budget)
    out["load_before_queries"] = load()
    per_level: dict[str, Any] = {}
    for lvl in ix.levels:
        lat: list[float] = []
        rows: list[dict[str, float]] = []
        for q, query in zip(questions, queries, strict=True):
            t1 = time.perf_counter()
            res = ix.search(query, level=lvl, budget=budget)
            lat.append(1000 * (time.perf_counter() - t1))
            rows.append(score_hits(res.hits, q))
        s = summarize(rows, lat)
        per_level[str(lvl)] = {
            **pct(lat),
            **{k: s[k] for k in ("recall", "precision", "iou", "answer_recall", "mrr")},
        }
    lat, rows = [], []
    chosen: dict[str, int] = {}
    for q, query in zip(questions, queries, strict=True):
        t1 = time.perf_counter()
        res = ix.search(query, budget=budget)
        lat.append(1000 * (time.perf_counter() - t1))
        rows.append(score_hits(res.hits, q))
        for c in res.routing.get("chosen", []):
            chosen[c] = chosen.get(c, 0) + 1
    s = summarize(rows, lat)
    routed = {
        "router": res.routing.get("router"),
        **pct(lat),
        **{k: s[k] for k in ("recall", "precision", "iou", "answer_recall", "mrr")},
        "chosen": chosen,
    }
    e2e = []
    for t in texts:
        t1 = time.perf_counter()
        ix.search(t, budget=budget)
        e2e.append(1000 * (time.perf_counter() - t1))
    out["load_after_queries"] = load()
    best = max(per_level, key=lambda k: per_level[k]["recall"] or 0.0)
    out["queries"] = {
        "n": len(questions),
        "budget": budget,
        "query_embed": pct(embed_ms),
        "per_level": per_level,
        "best_level": int(best),
        "routed_default": routed,
        "routed_default_end_to_end": pct(e2e),
    }
    del ix
    shutil.rmtree(path, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evalset", default="../shared/evalsets/chroma-dev",
                    help="eval-set directory (relative paths are relative to the repo root)")
    ap.add_argument("--configs", default="1level,embed,pool",
                    help=f"comma-separated subset of {','.join(CONFIGS)}")
    ap.add_argument("--float16", action="store_true", help="also build 'embed16'")
    ap.add_argument("--limit-docs", type=int, default=None,
                    help="index only N documents (seeded sample) of a big set")
    ap.add_argument("--questions", type=int, default=200, help="questions per level")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the JSON to this file")
    args = ap.parse_args(argv)

    evalset = resolve_evalset(args.evalset)
    docs_path, qs_path = evalset / "docs.jsonl.gz", evalset / "questions.jsonl.gz"
    if not docs_path.exists() or not qs_path.exists():
        print(f"eval set not found at {evalset} (need docs.jsonl.gz and questions.jsonl.gz); "
              "skipping", file=sys.stderr)
        return 0
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    if args.float16 and "embed16" not in names:
        names.append("embed16")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")

    docs, problems = load_documents([docs_path])
    if problems:
        print(f"{len(problems)} document problem(s), first: {problems[0]}", file=sys.stderr)
    n_all = len(docs)
    if args.limit_docs and args.limit_docs < len(docs):
        docs = random.Random(args.seed).sample(docs, args.limit_docs)
    doc_lengths = {d.id: len(d.text) for d in docs}
    questions, skipped = pick_questions(qs_path, doc_lengths, args.questions, args.seed)
    result: dict[str, Any] = {
        "bench": "index_build",
        "evalset": evalset.name,
        "documents": len(docs),
        "documents_in_set": n_all,
        "limit_docs": args.limit_docs,
        "corpus_chars": sum(len(d.text) for d in docs),
        "questions": len(questions),
        "questions_skipped_outside_docs": skipped,
        "budget": args.budget,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "blas_env": {k: os.environ.get(k) for k in
                                 ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}},
        "loadavg_start": load(),
        "configs": [],
    }
    with tempfile.TemporaryDirectory(prefix="mograg-bench-") as tmp:
        for name in names:
            result["configs"].append(
                build_and_measure(name, CONFIGS[name], docs, questions, args.budget, Path(tmp))
            )
    result["loadavg_end"] = load()
    by = {c["config"]: c for c in result["configs"]}
    if "1level" in by and "embed" in by:
        result["embed_vs_1level_build_x"] = round(
            by["embed"]["build"]["seconds"] / max(by["1level"]["build"]["seconds"], 1e-9), 2)
    if "embed" in by and "pool" in by:
        result["recall_embed_minus_pool"] = {
            lvl: round((by["embed"]["queries"]["per_level"][lvl]["recall"] or 0)
                       - (by["pool"]["queries"]["per_level"][lvl]["recall"] or 0), 4)
            for lvl in by["embed"]["queries"]["per_level"]
        }
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
