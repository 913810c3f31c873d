"""Routed search latency vs a single-level search (query embedding excluded and included).

Runs ``Index.search`` on a dev set's cached index (graph on) for N questions with: one
level (``level:128``), the shipped span selection (the default), the shipped model's
blend and the entropy blend. "excluded" passes pre-embedded queries; "included" adds
each question's own embedding time (measured once per question, the same for every
system). BLAS is pinned to one thread, as in `mograg serve`. The systems take turns
question by question (so a change of machine load hits them alike), and each search's
process CPU time is recorded beside its wall time: on a shared machine the CPU time is
the steadier measure of the work a search does.

``--repeat K`` runs every search (and embedding) K times and keeps each one's fastest: on a
loaded machine a search is often preempted, and the fastest of a few runs measures the work
it does rather than the other processes (the default, 1, is one run as before).

Usage: python bench/route_latency.py [--set hotpotqa-dev] [--n 200] [--repeat 1] [--out FILE]
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
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per search; each search's fastest is kept")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    ix = open_set(args.set)
    texts = [q.question for q in set_questions(args.set, ix)][: args.n]
    with threadpool_limits(1, user_api="blas"):
        embed_ms, embed_cpu = [], []
        queries = []
        for t in texts:
            runs = []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                q = ix.encode_queries([t])[0]
                runs.append((1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0)))
            queries.append(q)
            embed_ms.append(min(w for w, _ in runs))
            embed_cpu.append(min(c for _, c in runs))
        for q in queries[:10]:  # warm caches (title matcher, models)
            for kw in SYSTEMS.values():
                ix.search(q, budget=args.budget, router=kw["router"],
                          strategy=kw.get("strategy", "auto"))
        wall: dict[str, list[float]] = {name: [] for name in SYSTEMS}
        cpu: dict[str, list[float]] = {name: [] for name in SYSTEMS}
        names = list(SYSTEMS)
        for i, q in enumerate(queries):
            for name in names[i % len(names):] + names[: i % len(names)]:
                kw = SYSTEMS[name]
                runs = []
                for _ in range(args.repeat):
                    t0, c0 = time.perf_counter(), time.process_time()
                    ix.search(q, budget=args.budget, router=kw["router"],
                              strategy=kw.get("strategy", "auto"))
                    runs.append((1000 * (time.perf_counter() - t0),
                                 1000 * (time.process_time() - c0)))
                wall[name].append(min(w for w, _ in runs))
                cpu[name].append(min(c for _, c in runs))
        out: dict[str, dict[str, float]] = {}
        for name in SYSTEMS:
            arr, c = np.array(wall[name]), np.array(cpu[name])
            out[name] = {"p50_ms_excluded": _p(arr, 50), "p99_ms_excluded": _p(arr, 99),
                         "p50_ms_included": _p(arr + embed_ms, 50),
                         "p50_cpu_ms_excluded": _p(c, 50), "p99_cpu_ms_excluded": _p(c, 99),
                         "p50_cpu_ms_included": _p(c + embed_cpu, 50)}
    base = out["level:128"]
    for s in out.values():
        for key in ("ms_excluded", "ms_included", "cpu_ms_excluded", "cpu_ms_included"):
            s[f"x_single_{key.replace('ms_', '')}"] = round(s[f"p50_{key}"] / base[f"p50_{key}"], 2)
    return emit({"set": args.set, "questions": len(queries), "budget": args.budget,
                 "repeat": args.repeat,
                 "embed_p50_ms": _p(np.array(embed_ms), 50),
                 "embed_p50_cpu_ms": _p(np.array(embed_cpu), 50),
                 "systems": out, "loadavg": os.getloadavg()}, args.out)


def _p(values: np.ndarray, q: int) -> float:
    return round(float(np.percentile(values, q)), 2)


if __name__ == "__main__":
    raise SystemExit(main())
