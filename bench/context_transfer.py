"""Models trained on indexes without document context, applied to indexes with it.

For each dev set (the same protocol as ``bench/transfer.py``: budget 256, hybrid, graph on,
first 1,000 questions of squad-dev and medquad-dev), recall of the default search (span
selection hedged on the per-query model's best granularity) on the set's *context* index when
the models were fitted on *no-context* data: ``plain-loso`` (trained on the other six sets'
no-context data) and ``shipped`` (the package's model files as they are, fitted on all seven
sets without context, so not leave-one-out). The context data are the ones under
``$MOGRAG_CACHE/transfer`` (``bench/transfer_data.py``); ``--plain`` names the directory of
the no-context data.

Usage: python bench/context_transfer.py --plain DIR [--sets a,b] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from _transfer_eval import SetRunner
from mograg.retrieval.granularity_model import fit_default, shipped_model
from mograg.retrieval.spans import fit_default_spans, shipped_span_model
from transfer import _mean, _span_order
from transfer_data import SETS, load_spans

ROOT = Path(__file__).resolve().parents[1]


def _load(directory: Path, name: str) -> tuple[dict, dict]:
    """A set's question arrays and span candidates from ``directory``."""
    with np.load(directory / f"{name}-256.npz", allow_pickle=False) as z:
        d = {k: np.array(z[k]) for k in z.files if k in ("x", "scores", "recall")}
    with np.load(directory / f"{name}-spans-256.npz", allow_pickle=False) as z:
        s = {k: np.array(z[k]) for k in z.files}
    s["keep"] = ~np.isnan(d["recall"][:, 0])[s["q"]]
    return d, s


def main() -> None:
    """Score both variants on every set and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--plain", required=True, help="directory of the no-context transfer data")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"
                                         / "context-transfer-256.json"))
    args = ap.parse_args()
    sets = args.sets.split(",")
    t0 = time.perf_counter()
    plain = {name: _load(Path(args.plain), name) for name in sets}
    table: dict[str, dict] = {}
    with threadpool_limits(1, user_api="blas"):
        for test in sets:
            runner = SetRunner(test)
            spans = load_spans(test)
            x = runner.data["x"]
            train = [t for t in sets if t != test]
            model = fit_default([plain[t][0]["x"] for t in train],
                                [plain[t][0]["scores"] for t in train], runner.names, train)
            span_model = fit_default_spans(
                [plain[t][1]["x"][plain[t][1]["keep"]] for t in train],
                [plain[t][1]["y"][plain[t][1]["keep"]] for t in train], train)
            row = {"plain-loso": _mean(runner.picks_recall(
                _span_order(spans, span_model, runner, model.predict(x).argmax(axis=1))))}
            shipped, shipped_spans = shipped_model(), shipped_span_model()
            assert shipped is not None and shipped_spans is not None
            row["shipped"] = _mean(runner.picks_recall(
                _span_order(spans, shipped_spans, runner, shipped.predict(x).argmax(axis=1))))
            table[test] = row
            print(json.dumps({test: row}), flush=True)
    avg = {k: round(float(np.mean([r[k] for r in table.values()])), 4)
           for k in ("plain-loso", "shipped")}
    result = {"budget": 256, "mode": "hybrid", "context": True, "plain_data": args.plain,
              "sets": table, "average": avg, "seconds": round(time.perf_counter() - t0, 1),
              "loadavg": os.getloadavg()}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
