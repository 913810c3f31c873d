"""Dev-set recall with and without document context and pruning (issue 13): budget 256,
hybrid.

For each set, `mograg eval` (no router training, no graph) three ways: "without" (no
context, no relevance floor or folding: as before issue 13), "floor" (no context, with
the floor and folding of mograg.retrieval.prune) and "with" (context and pruning: this branch's
default). Writes bench/results/context_devsets.json. Run under the heavy lock.

    python bench/context_devsets.py [--sets chroma-dev,...] [--limit 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import mograg.retrieval.prune
from _output import emit
from mograg.eval.commands import run_eval_command

ROOT = Path(__file__).resolve().parents[1]
EVALSETS = ROOT.parent / "shared" / "evalsets"
SETS = "chroma-dev,hotpotqa-dev,hotpotqa-train,musique-train,clapnq-dev,medquad-dev,squad-dev"
KEEP = ("recall", "iou", "answer_recall", "mrr", "token_recall")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default=SETS)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "context_devsets.json"))
    args = ap.parse_args()
    if not EVALSETS.exists():
        print(f"no eval sets at {EVALSETS}; nothing to do", file=sys.stderr)
        return 0
    floor, share = mograg.retrieval.prune.FLOOR, mograg.retrieval.prune.DUPLICATE_SHARE
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name in args.sets.split(","):
        d = EVALSETS / name
        row: dict = {}
        for label, context, prune in (("without", False, False), ("floor", False, True),
                                      ("with", True, True)):
            mograg.retrieval.prune.FLOOR = floor if prune else -1.0
            mograg.retrieval.prune.DUPLICATE_SHARE = share if prune else 2.0
            t0 = time.perf_counter()
            outcome = run_eval_command(questions=d / "questions.jsonl.gz",
                                       docs=d / "docs.jsonl.gz", budgets=[args.budget],
                                       limit=args.limit, context=context)
            systems = outcome.results[0]["systems"]
            row[label] = {
                "seconds": round(time.perf_counter() - t0, 1),
                "best_fixed": systems["best_fixed"]["level"],
                **{f"{sys_name}.{k}": systems[sys_name].get(k)
                   for sys_name in ("best_fixed", "router:entropy+blend") for k in KEEP
                   if systems[sys_name].get(k) is not None},
            }
        row["loadavg"] = os.getloadavg()
        results[name] = row
        print(json.dumps({name: row}), file=sys.stderr, flush=True)
        out_path.write_text(json.dumps(results, indent=1) + "\n")
    return emit(results, None)


if __name__ == "__main__":
    sys.exit(main())
