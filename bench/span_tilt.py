"""How the shipped span model values coarse vs fine spans, leave-one-set-out.

The span model is a ridge fit of each candidate's evidence share (least squares), but
selection only uses its *ranking*. This adds ``t * tilt(level)`` to every estimate
(``tilt``: log2 of the level size, centred, from -1 at 32 tokens to +1 at 512; ``t < 0``
favours finer spans) and scores the shipped default (span selection + 20% hedge, trained on
the other six sets) on every set. Not shipped: see bench/results/span_tilt-256.json and the
issue-14 note.

Usage: python bench/span_tilt.py [--tilts 0,-0.01,-0.02] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from _transfer_eval import SetRunner
from mograg.retrieval.granularity_model import fit_default
from mograg.retrieval.spans import SPAN_LEVELS, fit_default_spans
from transfer import _span_order
from transfer_data import SETS, load_set, load_spans

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Score every tilt on every set and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tilts", default="0,-0.01,-0.02")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "span_tilt-256.json"))
    args = ap.parse_args()
    tilts = [float(t) for t in args.tilts.split(",")]
    log_size = np.log2(SPAN_LEVELS)
    tilt = (log_size - log_size.mean()) / (log_size.max() - log_size.mean())
    t0 = time.perf_counter()
    data = {s: load_set(s) for s in SETS}
    spans = {s: load_spans(s) for s in SETS}
    table = {}
    with threadpool_limits(1, user_api="blas"):
        for test in SETS:
            runner = SetRunner(test)
            train = [t for t in SETS if t != test]
            model = fit_default([data[t]["x"] for t in train],
                                [data[t]["scores"] for t in train], runner.names, train)
            hedge = model.predict(data[test]["x"]).argmax(axis=1)
            sm = fit_default_spans([spans[t]["x"][spans[t]["keep"]] for t in train],
                                   [spans[t]["y"][spans[t]["keep"]] for t in train], train)
            row = {}
            for t in tilts:
                order = _span_order(spans[test], replace(sm, level_offset=t * tilt), runner, hedge)
                row[str(t)] = round(float(np.nanmean(runner.picks_recall(order))), 4)
            table[test] = row
            print(json.dumps({test: table[test]}), file=sys.stderr, flush=True)
    avg = {str(t): round(float(np.mean([r[str(t)] for r in table.values()])), 4) for t in tilts}
    result = {"budget": 256, "sets": table, "average": avg,
              "seconds": round(time.perf_counter() - t0, 1), "loadavg": os.getloadavg()}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
