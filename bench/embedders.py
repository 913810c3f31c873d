"""MiniLM (default) vs e5-small (``mograg[e5]``) on the dev sets: recall, index time, bytes.

For each set and embedder: index the docs once (cached under $MOGRAG_CACHE/embedders/), then
evaluate the first --limit questions at one budget in hybrid and dense mode: the best fixed
level, the default router (entropy, blend) and the per-question oracle.
``--max-docs N`` indexes the first N documents only (questions whose evidence lies outside
are skipped, the same for both embedders). One JSON line per (set, embedder), and all of
them in --out.

Usage: python bench/embedders.py --sets chroma-dev,hotpotqa-dev [--limit 1000]
       [--max-docs N] [--embedders minilm,e5-small] [--out bench/results/embedders.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from _output import emit
from mograg.eval.commands import cache_root, run_eval_command
from mograg.index.core import Index
from mograg.types import Document

EVALSETS = Path(__file__).resolve().parents[2] / "shared" / "evalsets"


def _docs(name: str, max_docs: int | None) -> list[Document]:
    with gzip.open(EVALSETS / name / "docs.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    rows = rows[:max_docs] if max_docs else rows
    return [Document(r["id"], r["text"], r.get("metadata") or {}) for r in rows]


def _index(name: str, embedder: str, max_docs: int | None) -> tuple[Index, dict[str, Any]]:
    root = cache_root() / "embedders" / f"{name}-{max_docs or 'all'}-{embedder}"
    stats_file = root.with_suffix(".build.json")
    if not (root / "manifest.json").exists() or not stats_file.exists():
        shutil.rmtree(root, ignore_errors=True)
        docs = _docs(name, max_docs)
        t0 = time.perf_counter()
        ix = Index.create(root, embedder=None if embedder == "minilm" else embedder)
        report = ix.add(docs)
        stats = {"index_seconds": round(time.perf_counter() - t0, 1), "docs": len(docs),
                 "embedded": report.embedded, "loadavg_during": os.getloadavg()}
        stats_file.write_text(json.dumps(stats))
    ix = Index.open(root)
    stats = json.loads(stats_file.read_text())
    stats["bytes"] = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    stats["vector_bytes"] = sum(p.stat().st_size for p in root.rglob("vectors*") if p.is_file())
    return ix, stats


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    s = result["systems"]
    return {
        "best_fixed": s["best_fixed"]["level"],
        "best_fixed_recall": s["best_fixed"]["recall"],
        "entropy_recall": s["router:entropy+blend"]["recall"],
        "oracle_recall": s["oracle"]["recall"],
        "questions": result.get("questions", result.get("n_questions")),
    }


def main() -> int:
    """Evaluate each (set, embedder) and print/save the results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default="chroma-dev,hotpotqa-dev")
    ap.add_argument("--embedders", default="minilm,e5-small")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--max-docs", type=int, default=None)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for name in args.sets.split(","):
        for emb in args.embedders.split(","):
            ix, stats = _index(name, emb, args.max_docs)
            row: dict[str, Any] = {"set": name, "embedder": emb, "max_docs": args.max_docs,
                                   "budget": args.budget, **stats}
            for mode in ("hybrid", "dense"):
                t0 = time.perf_counter()
                outcome = run_eval_command(
                    questions=EVALSETS / name / "questions.jsonl.gz", index=ix.root,
                    budgets=[args.budget], mode=mode, limit=args.limit)
                row[mode] = {**_summary(outcome.results[0]),
                             "skipped": len(outcome.skipped),
                             "eval_seconds": round(time.perf_counter() - t0, 1)}
            row["loadavg"] = os.getloadavg()
            print(json.dumps(row), flush=True)
            rows.append(row)
    return emit({"bench": "embedders", "rows": rows}, args.out) if args.out else 0


if __name__ == "__main__":
    raise SystemExit(main())
