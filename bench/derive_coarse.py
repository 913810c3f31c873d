"""Can one pass serve a routed query? Coarse levels' dense top-50 derived from the finest
level's top-K hits through the level tree (their ancestors, rescored exactly), vs each
coarse level's own exact top-50 (issue 15, "one pass for a routed query").

Usage::

    PYTHONPATH=src python bench/derive_coarse.py --index CACHED_MEDQUAD_DEV_INDEX \\
        [--questions ../shared/evalsets/medquad-dev/questions.jsonl.gz] [--limit 300] [--out F]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from _output import emit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--questions", type=Path,
                    default=Path("../shared/evalsets/medquad-dev/questions.jsonl.gz"))
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--ks", default="50,200,1000")
    ap.add_argument("--out")
    args = ap.parse_args()
    os.environ["MOGRAG_ANN"] = "off"  # exact everywhere: this measures the tree, not a graph
    from mograg.index.core import Index

    threadpool_limits(1, user_api="blas")
    ix = Index.open(args.index)
    snap = ix.snapshot
    with gzip.open(args.questions, "rt") as f:
        texts = [json.loads(line)["question"] for line in itertools.islice(f, args.limit)]
    queries = ix.encode_queries(texts)
    load_before = os.getloadavg()
    levels = range(1, len(snap.sizes))
    result: dict[str, dict[str, float]] = {}
    for k in [int(x) for x in args.ks.split(",")]:
        recall: dict[int, list[float]] = {j: [] for j in levels}
        for q in queries:
            finest = snap.dense_scores(0, q.vector)
            top = np.argpartition(-finest, k - 1)[:k]
            for j in levels:
                own = snap.dense_scores(j, q.vector)
                truth = set(np.argpartition(-own, 49)[:50].tolist())
                cand = np.unique(snap.ancestors[j][top])
                sims = snap.chunk_vectors(j, cand) @ q.vector
                derived = set(cand[np.argsort(-sims)[:50]].tolist())
                recall[j].append(len(truth & derived) / 50)
        result[str(k)] = {f"level:{snap.sizes[j]}": round(float(np.mean(v)), 3)
                          for j, v in recall.items()}
    return emit({"bench": "derive_coarse", "index": str(args.index), "questions": len(queries),
                 "coarse_top50_recall_from_finest_top_k": result,
                 "load_before": [round(x, 2) for x in load_before],
                 "load_after": [round(x, 2) for x in os.getloadavg()]}, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
