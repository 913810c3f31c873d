"""Dev-set recall with and without document context (issue 13): budget 256, hybrid.

For each set, `mograg eval --docs` (no router training) with `--no-context` and with
`--context`, the graph on (as the CLI) or off: every system's recall, and context on −
off in points. The issue asks every set's default search (router:shipped+spans) to stay
within 0.5 points of no context, or better. Writes ``--out`` (one process; run niced).

    python bench/context_devsets.py --graph --out bench/results/context_devsets-graph-s4.json
    python bench/context_devsets.py --no-graph --out bench/results/context_devsets-realdocs-s4.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _output import emit
from mograg.eval.commands import run_eval_command

ROOT = Path(__file__).resolve().parents[1]
EVALSETS = ROOT.parent / "shared" / "evalsets"
SETS = "chroma-dev,hotpotqa-dev,hotpotqa-train,musique-train,clapnq-dev,squad-dev,medquad-dev"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default=SETS)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--graph", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "context_devsets.json"))
    args = ap.parse_args()
    if not EVALSETS.exists():
        print(f"no eval sets at {EVALSETS}; nothing to do", file=sys.stderr)
        return 0
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    sets = results.setdefault("sets", {})
    for name in args.sets.split(","):
        d = EVALSETS / name
        row: dict = {}
        for label, context in (("no-context", False), ("context", True)):
            t0 = time.perf_counter()
            outcome = run_eval_command(questions=d / "questions.jsonl.gz",
                                       docs=d / "docs.jsonl.gz", budgets=[args.budget],
                                       limit=args.limit, context=context, graph=args.graph)
            systems = outcome.results[0]["systems"]
            row[label] = {k: round(v["recall"], 4) for k, v in systems.items()
                          if isinstance(v, dict) and v.get("recall") is not None}
            row[label] |= {"seconds": round(time.perf_counter() - t0, 1),
                           "loadavg_at_end": os.getloadavg()}
        row["on_minus_off_points"] = {
            k: round(100 * (v - row["no-context"][k]), 2) for k, v in row["context"].items()
            if k in row["no-context"] and k not in ("seconds", "loadavg_at_end")}
        sets[name] = row
        print(json.dumps({name: row["on_minus_off_points"]}), file=sys.stderr, flush=True)
        out_path.write_text(json.dumps(results, indent=1) + "\n")
    return emit(results, None)


if __name__ == "__main__":
    sys.exit(main())
