"""Routed search latency vs a single-level search (query embedding excluded and included).

Runs ``Index.search`` on a dev set's cached index (graph on) for N questions with: one
level (``level:128``), the shipped span selection (the default), the shipped model's
blend and the entropy blend. "excluded" passes pre-embedded queries; "included" adds
each question's own embedding time (measured once per question, the same for every
system). BLAS is pinned to one thread, as in `mograg serve`.

Usage: python bench/route_latency.py [--set hotpotqa-dev] [--n 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from _output import emit
from transfer_data import open_set, set_questions

SYSTEMS = {
    "level:128": {"router": "level:128"},
    "shipped+spans (default)": {"router": "shipped", "strategy": "spans"},
    "shipped+blend": {"router": "shipped", "strategy": "blend"},
    "entropy+blend": {"router": "entropy", "strategy": "blend"},
    "rrf-levels": {"router": "rrf-levels"},
}


def main() -> int:
    """Time every system on the same questions."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", default="hotpotqa-dev")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    ix = open_set(args.set)
    texts = [q.question for q in set_questions(args.set, ix)][: args.n]
    with threadpool_limits(1, user_api="blas"):
        embed_ms = []
        queries = []
        for t in texts:
            t0 = time.perf_counter()
            queries.append(ix.encode_queries([t])[0])
            embed_ms.append(1000 * (time.perf_counter() - t0))
        for q in queries[:10]:  # warm caches (title matcher, models)
            for kw in SYSTEMS.values():
                ix.search(q, budget=args.budget, router=kw["router"],
                          strategy=kw.get("strategy", "auto"))
        out: dict[str, dict[str, float]] = {}
        for name, kw in SYSTEMS.items():
            ms = []
            for q in queries:
                t0 = time.perf_counter()
                ix.search(q, budget=args.budget, router=kw["router"],
                          strategy=kw.get("strategy", "auto"))
                ms.append(1000 * (time.perf_counter() - t0))
            arr = np.array(ms)
            out[name] = {"p50_ms_excluded": round(float(np.percentile(arr, 50)), 2),
                         "p99_ms_excluded": round(float(np.percentile(arr, 99)), 2),
                         "p50_ms_included": round(float(np.percentile(arr + embed_ms, 50)), 2)}
    base = out["level:128"]
    for s in out.values():
        s["x_single_excluded"] = round(s["p50_ms_excluded"] / base["p50_ms_excluded"], 2)
        s["x_single_included"] = round(s["p50_ms_included"] / base["p50_ms_included"], 2)
    return emit({"set": args.set, "questions": len(queries), "budget": args.budget,
                 "embed_p50_ms": round(float(np.percentile(embed_ms, 50)), 2),
                 "systems": out, "loadavg": os.getloadavg()}, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
