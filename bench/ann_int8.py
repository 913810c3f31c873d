"""Graph vectors in float16 or int8, with and without over-fetch and exact re-scoring.

mograg re-scores a graph's candidates with the stored float32 rows, so what matters is
whether the exact top 50 is among the candidates, not the graph's own order. This
measures recall@50 (vs exact numpy) of:

  * the graph alone (its top 50 by its own distances), float16 and int8;
  * the graph asked for ``fetch`` candidates, re-scored exactly, top 50 kept
    (``AnnIndex.fetch_size`` asks an int8 graph for up to twice as many).

Vectors: the finest level of a cached index (e.g. medquad-dev's real MiniLM vectors);
queries: chunks' vectors plus noise (a question is near, not on, its evidence).

Usage::

    PYTHONPATH=src python bench/ann_int8.py --index DIR [--rows 30000] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from _output import emit

TOP = 50


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Share of ``exact`` in ``found``."""
    return len(set(found.tolist()) & set(exact.tolist())) / len(exact)


def main() -> int:
    from usearch.index import Index as UIndex

    from mograg.store.ann import CONNECTIVITY, EXPANSION_ADD, EXPANSION_SEARCH

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--rows", type=int, default=30_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out")
    args = ap.parse_args()
    files = sorted((args.index / "segments").glob("*/vectors-0.npy"))
    data = np.concatenate([np.load(f, mmap_mode="r") for f in files])[: args.rows]
    data = np.ascontiguousarray(data, dtype=np.float32)
    rng = np.random.default_rng(0)
    dim = data.shape[1]
    q = data[rng.choice(len(data), args.queries, replace=False)]
    q = q + 0.5 * rng.standard_normal(q.shape).astype(np.float32) / np.sqrt(dim)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = np.argsort(-(q @ data.T), axis=1)[:, :TOP]
    result: dict[str, Any] = {"bench": "ann_int8", "index": str(args.index),
                              "rows": len(data), "queries": len(q), "top": TOP,
                              "load_before": os.getloadavg(), "graphs": {}}
    for dtype in ("f16", "i8"):
        graph = UIndex(ndim=dim, metric="ip", dtype=dtype, connectivity=CONNECTIVITY,
                       expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)
        t = time.process_time()
        graph.add(np.arange(len(data), dtype=np.uint64), data, threads=1)
        row: dict[str, Any] = {"build_cpu_s": round(time.process_time() - t, 2)}
        for fetch in (TOP, 64, 100, 128):
            rec, t = [], time.process_time()
            for i in range(len(q)):
                keys = np.asarray(graph.search(q[i], fetch, threads=1).keys, np.int64)
                top = keys[np.argsort(-(data[keys] @ q[i]))[:TOP]]
                rec.append(recall(top, exact[i]))
            row[f"fetch_{fetch}"] = {
                "recall_at_50": round(float(np.mean(rec)), 4),
                "cpu_ms": round((time.process_time() - t) / len(q) * 1e3, 3)}
        result["graphs"][dtype] = row
    result["load_after"] = os.getloadavg()
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
