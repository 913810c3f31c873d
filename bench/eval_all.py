"""Run `mograg eval` (5-fold cross-validated routers, graph granularities) on dev sets.

Prints one JSON object per set and writes them to bench/results/eval-<set>.json.
Usage: python bench/eval_all.py [--sets chroma-dev,squad-dev] [--limit 1000] [--budget 256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from mograg.eval.commands import run_eval_command

ROOT = Path(__file__).resolve().parents[1]
EVALSETS = ROOT.parent / "shared" / "evalsets"
DEFAULT_SETS = "chroma-dev,hotpotqa-dev,hotpotqa-train,musique-train,clapnq-dev,squad-dev"


def main() -> None:
    """Evaluate each set and print/save the results."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default=DEFAULT_SETS)
    ap.add_argument("--limit", type=int, default=1000, help="questions per set (first N)")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--no-graph", action="store_true")
    args = ap.parse_args()
    if not EVALSETS.exists():
        print(f"no eval sets at {EVALSETS}; nothing to do", file=sys.stderr)
        return
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.sets.split(","):
        d = EVALSETS / name
        t0 = time.perf_counter()
        outcome = run_eval_command(
            questions=d / "questions.jsonl.gz", docs=d / "docs.jsonl.gz",
            budgets=[args.budget], limit=args.limit, folds=args.folds,
            graph=not args.no_graph,
        )
        result = {"set": name, "seconds": round(time.perf_counter() - t0, 1),
                  "loadavg": os.getloadavg(), **outcome.results[0]}
        (out_dir / f"eval-{name}.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
