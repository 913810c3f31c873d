"""How `mograg tune` should adapt the shipped model: recipes compared leave-one-set-out.

For each dev set, the shipped recipe is trained on the other six (as in bench/transfer.py)
and adapted on the test set's synthetic questions (no labels) by each recipe of a fixed
list, then scored with span selection + hedge on the set's real questions. A recipe is
``spans|hedge``: what moves the span model's per-level offsets and what moves the per-query
model's prior (which picks the hedge granularity):

- ``none``: as shipped;
- ``S``/``P`` + ``raw``: moved towards the sentence (``S``) or passage (``P``) synthetic
  questions, shrunk (``SPAN_KAPPA`` candidates / ``KAPPA`` questions) — the former `tune`
  was ``Sraw|Sraw``;
- ``S``/``P`` + ``cal``: the same, minus what the training sets' own synthetic questions of
  that shape showed under the same model (the synthetic bias), shrunk the same way (span
  offsets: 2,000 pseudo-candidates).

Two references use the test set's *real* labels (not available to a user): ``real-offsets``
(span level offsets fitted to the real evidence shares) and ``real-prior`` (prior moved by
the real questions' shift) — the most each lever could give. Output: recall per set and
recipe, each recipe's gain over the untuned default per set and on average.

Usage: python bench/tune_loso.py [--sets a,b] [--out FILE]
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
from mograg.eval.tune import KAPPA, adapt_spans, prior_shift, synthetic_shift
from mograg.retrieval.granularity_model import fit_default
from mograg.retrieval.spans import SPAN_FEATURES, Candidates, SpanModel, fit_default_spans
from transfer import N_LEVELS, _span_order
from transfer_data import SETS, load_set, load_spans, load_synthetic

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["none|none", "Sraw|none", "Sraw|Sraw", "Sraw|Scal", "Scal|Scal", "none|Scal",
           "Scal|none", "Pcal|none", "Pcal|Pcal", "none|Pcal", "Praw|Praw", "none|Praw"]
CAL_SPAN_KAPPA = 2000.0
SHAPES = {"S": "sentence", "P": "passage"}


def _cands(z: dict) -> Candidates:
    x = z["span_x"].astype(np.float64)
    n_feat = len(SPAN_FEATURES)
    return Candidates(np.argmax(x[:, n_feat:n_feat + N_LEVELS], axis=1),
                      np.zeros(len(x), np.int64), x)


def _level_resid(model: SpanModel, c: Candidates, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = y - model.predict(c.x)
    return (np.bincount(c.level, weights=r, minlength=N_LEVELS),
            np.bincount(c.level, minlength=N_LEVELS).astype(np.float64))


def evaluate_set(test: str, data: dict, spans: dict, syn: dict) -> dict:
    """Recall of every recipe (and the two real-label references) on ``test``."""
    runner = SetRunner(test)
    d = data[test]
    train = [t for t in SETS if t != test]
    model = fit_default([data[t]["x"] for t in train], [data[t]["scores"] for t in train],
                        runner.names, train)
    sm = fit_default_spans([spans[t]["x"][spans[t]["keep"]] for t in train],
                           [spans[t]["y"][spans[t]["keep"]] for t in train], train)
    pred = model.predict(d["x"])
    span_v: dict[str, SpanModel] = {"none": sm}
    hedge_v: dict[str, np.ndarray] = {"none": pred.argmax(axis=1)}
    for k in SHAPES:
        z = syn[k]
        c = _cands(z[test])
        span_v[f"{k}raw"] = adapt_spans(sm, [c], [z[test]["span_y"]], N_LEVELS)
        tot, cnt = _level_resid(sm, c, z[test]["span_y"])
        base = np.mean([np.divide(*_level_resid(sm, _cands(z[t]), z[t]["span_y"]))
                        for t in train], axis=0)
        span_v[f"{k}cal"] = replace(sm, level_offset=(tot - cnt * base) / (cnt + CAL_SPAN_KAPPA))
        shift = prior_shift(model, z[test]["x"], z[test]["scores"])
        bias = np.array(synthetic_shift(model, [z[t]["x"] for t in train],
                                        [z[t]["scores"] for t in train]))
        share = len(z[test]["x"]) / (len(z[test]["x"]) + KAPPA)
        hedge_v[f"{k}raw"] = (pred + share * shift).argmax(axis=1)
        hedge_v[f"{k}cal"] = (pred + share * (shift - bias)).argmax(axis=1)

    def recall(sp: SpanModel, hedge: np.ndarray) -> float:
        r = runner.picks_recall(_span_order(spans[test], sp, runner, hedge))
        return round(float(np.nanmean(r)), 4)

    out = {r: recall(span_v[r.split("|")[0]], hedge_v[r.split("|")[1]]) for r in RECIPES}
    keep = spans[test]["keep"]
    real = Candidates(spans[test]["level"][keep], spans[test]["chunk"][keep],
                      spans[test]["x"][keep].astype(np.float64))
    tot, cnt = _level_resid(sm, real, spans[test]["y"][keep])
    out["real-offsets"] = recall(replace(sm, level_offset=tot / np.maximum(cnt, 1)),
                                 hedge_v["none"])
    ok = ~np.isnan(d["recall"][:, 0])
    out["real-prior"] = recall(sm, (pred + prior_shift(model, d["x"][ok], d["scores"][ok]))
                               .argmax(axis=1))
    return out


def main() -> None:
    """Compute the table and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "tune_loso-256.json"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = {s: load_set(s) for s in SETS}
    spans = {s: load_spans(s) for s in SETS}
    syn = {k: {s: load_synthetic(s, shape=shape) for s in SETS}  # type: ignore[arg-type]
           for k, shape in SHAPES.items()}
    table = {}
    with threadpool_limits(1, user_api="blas"):
        for name in args.sets.split(","):
            table[name] = evaluate_set(name, data, spans, syn)
            print(json.dumps({name: table[name]}), file=sys.stderr, flush=True)
    systems = list(next(iter(table.values())))
    gain = {k: {s: round(100 * (t[k] - t["none|none"]), 2) for s, t in table.items()}
            for k in systems}
    avg = {k: round(float(np.mean(list(v.values()))), 2) for k, v in gain.items()}
    result = {"budget": 256, "sets": table, "gain_points_over_default": gain,
              "average_gain_points": avg, "seconds": round(time.perf_counter() - t0, 1),
              "loadavg": os.getloadavg()}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
