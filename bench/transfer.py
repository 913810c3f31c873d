"""Leave-one-set-out table: what a user gets from the shipped model on a corpus it never saw.

For each dev set (budget 256, hybrid, graph granularities on; first 1,000 questions of
squad-dev and medquad-dev), the shipped model's recipe is trained on the *other* sets
only and tested on this one, next to: every level and graph granularity, the best fixed
level and granularity in hindsight, the per-question oracle, ``rrf-levels``, the
training-free ``entropy`` router (+blend, the default before the shipped model),
the LOSO model tuned on the test corpus's synthetic questions (``mograg tune``, no
labels), and 5-fold cross-validated routers trained on the set's own labels.
Per-question data come from ``bench/transfer_data.py`` (made on first use).

Usage: python bench/transfer.py [--sets a,b,...] [--only a,b] [--groups g,h] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from _transfer_eval import SetRunner
from mograg.eval.synthetic import Shape
from mograg.eval.tune import SPAN_OFFSETS_FROM_SYNTHETIC, adapt, adapt_spans, synthetic_shift
from mograg.retrieval.granularity_model import GranularityModel, fit_default
from mograg.retrieval.routers import EntropyRouter, features
from mograg.retrieval.routing import blend_picks
from mograg.retrieval.spans import (
    HEDGE_SHARE,
    SPAN_FEATURES,
    Candidates,
    SpanModel,
    fit_default_spans,
    span_picks,
)
from transfer_data import SETS, data_dir, dump_set, load_set, load_spans, load_synthetic

ROOT = Path(__file__).resolve().parents[1]


class _Collected:
    """What :func:`mograg.evaluate.cross_validated_weights` reads from a collection."""

    def __init__(self, runner: SetRunner) -> None:
        self.questions = runner.questions
        self.names = runner.names
        self.features = np.array([features(*runner.query(i)) for i in range(runner.n)])
        self._scores = runner.data["scores"]

    def scores(self) -> np.ndarray:
        return self._scores


def _mean(v: np.ndarray) -> float:
    return round(float(np.nanmean(v)), 4)


GROUPS = ("fixed", "rrf-levels", "entropy+blend", "shipped-blend-loso", "default-loso",
          "tuned-loso", "spans-5fold", "cv")


def evaluate_set(test: str, data: dict[str, dict], data_spans: dict[str, dict],
                 folds: int = 5, groups: tuple[str, ...] = GROUPS,
                 previous: dict | None = None) -> dict:
    """Every system's recall on ``test`` (models trained without its labels where stated);
    only ``groups`` are computed, the others' values come from ``previous``."""
    from mograg.eval.evaluate import cross_validated_weights

    def want(group: str) -> bool:
        return group in groups or previous is None

    runner = SetRunner(test)
    d = data[test]
    names, recall, scores = runner.names, d["recall"], d["scores"]
    rows = np.arange(runner.n)
    s: dict[str, Any] = dict(previous or {})
    s.update({n: _mean(recall[:, g]) for g, n in enumerate(names)})
    levels = [n for n in names if n.startswith("level:")]
    best_level = max(levels, key=lambda n: s[n])
    best_gran = max(names, key=lambda n: s[n])
    s["best_fixed_level"] = {"name": best_level, "recall": s[best_level]}
    s["best_fixed_granularity"] = {"name": best_gran, "recall": s[best_gran]}
    s["oracle"] = _mean(recall[rows, scores.argmax(axis=1)])
    if want("rrf-levels"):
        s["rrf-levels"] = _mean(runner.rrf_recall())
    if want("entropy+blend"):
        entropy = EntropyRouter(runner.budget)
        w = np.array([entropy.weights(runner.index, runner.query(int(i))[0],
                                      runner.query(int(i))[1], names) for i in rows])
        s["entropy+blend"] = _mean(runner.blend_recall(w))
    train = [t for t in data if t != test]
    # the shipped recipe trained on the other sets: per-query blend weights and span selection
    model = fit_default([data[t]["x"] for t in train], [data[t]["scores"] for t in train],
                        names, train)
    if want("shipped-blend-loso"):
        s["shipped-blend-loso"] = _mean(runner.blend_recall(model.weights_for(d["x"], names)))
    spans = data_spans[test]
    span_model = fit_default_spans([data_spans[t]["x"][data_spans[t]["keep"]] for t in train],
                                   [data_spans[t]["y"][data_spans[t]["keep"]] for t in train],
                                   train)
    hedge = model.predict(d["x"]).argmax(axis=1)
    if want("default-loso"):
        s["default-loso"] = _mean(runner.picks_recall(_span_order(spans, span_model, runner,
                                                                  hedge)))
    if want("tuned-loso"):
        s["tuned-loso"] = _mean(runner.picks_recall(_tuned_order(test, train, spans, runner,
                                                                 model, span_model)))
    if want("spans-5fold"):  # span selection trained on this set's own labels (5-fold)
        s["spans-5fold"] = _mean(_span_folds(runner, spans, folds))
    if want("cv"):
        col = _Collected(runner)
        for kind in ("prior", "ridge"):
            w, _ = cross_validated_weights(col, folds, kind)  # type: ignore[arg-type]
            s[f"cv-{kind}+blend"] = _mean(runner.blend_recall(w))
    return s


N_LEVELS = 5
SHAPE: Shape = "sentence"  # what `mograg tune` writes


def _span_order(spans: dict, model: SpanModel, runner: SetRunner,
                hedge: np.ndarray | None = None) -> Callable[[int], list]:
    """Question ``i``'s candidates ordered by ``model``'s estimates; with ``hedge`` (a
    granularity per question), that granularity's list shares the budget as in a search."""
    starts = np.searchsorted(spans["q"], np.arange(runner.n + 1))
    x = spans["x"].astype(np.float64)
    cands = Candidates(spans["level"], spans["chunk"], x)
    pred = model.score(cands)
    snap = runner.index.snapshot

    def make(i: int) -> list:
        sl = slice(starts[i], starts[i + 1])
        ordered = span_picks(Candidates(spans["level"][sl], spans["chunk"][sl], x[sl]),
                             pred[sl])
        if hedge is None:
            return ordered
        return blend_picks(snap, [ordered, runner.picks(i)[int(hedge[i])]],
                           np.array([1.0 - HEDGE_SHARE, HEDGE_SHARE]))

    return make


def _tuned_order(test: str, train: list[str], spans: dict, runner: SetRunner,
                 model: GranularityModel, span_model: SpanModel) -> Callable[[int], list]:
    """The LOSO models tuned on ``test``'s synthetic questions as `mograg tune` does: the
    prior calibrated by the training sets' synthetic shift (their own synthetic questions
    under the same LOSO model)."""
    syn = {t: load_synthetic(t, shape=SHAPE) for t in [test, *train]}
    baseline = np.array(synthetic_shift(model, [syn[t]["x"] for t in train],
                                        [syn[t]["scores"] for t in train]))
    tuned = adapt(model, syn[test]["x"], syn[test]["scores"], baseline=baseline)
    if SPAN_OFFSETS_FROM_SYNTHETIC:
        n_feat = len(SPAN_FEATURES)
        x = syn[test]["span_x"].astype(np.float64)
        cands = Candidates(np.argmax(x[:, n_feat:n_feat + N_LEVELS], axis=1),
                           np.zeros(len(x), np.int64), x)
        span_model = adapt_spans(span_model, [cands], [syn[test]["span_y"]], N_LEVELS)
    hedge = tuned.predict(runner.data["x"]).argmax(axis=1)
    return _span_order(spans, span_model, runner, hedge)


def _span_folds(runner: SetRunner, spans: dict, folds: int, seed: int = 0) -> np.ndarray:
    """Recall of span selection trained K-fold on the set's own questions."""
    order = np.random.default_rng(seed).permutation(runner.n)
    fold_of = np.empty(runner.n, np.int64)
    fold_of[order] = np.arange(runner.n) % folds
    out = np.full(runner.n, np.nan)
    for k in range(folds):
        train = (fold_of[spans["q"]] != k) & spans["keep"]
        model = fit_default_spans([spans["x"][train]], [spans["y"][train]], [runner.name])
        make = _span_order(spans, model, runner)
        test = np.flatnonzero(fold_of == k)
        rec = runner.picks_recall(make, test)
        out[test] = rec[test]
    return out


def summarise(table: dict[str, dict]) -> dict:
    """Average of every system and each system's gain over the hindsight best granularity."""
    keys = [k for k, v in next(iter(table.values())).items() if not isinstance(v, dict)]
    avg = {k: round(float(np.mean([t[k] for t in table.values()])), 4) for k in keys}
    for ref in ("best_fixed_level", "best_fixed_granularity"):
        avg[ref] = round(float(np.mean([t[ref]["recall"] for t in table.values()])), 4)
    gains = {k: {s: round(t[k] - t["best_fixed_granularity"]["recall"], 4)
                 for s, t in table.items()}
             for k in ("rrf-levels", "entropy+blend", "shipped-blend-loso", "default-loso",
                       "tuned-loso", "spans-5fold", "cv-prior+blend", "cv-ridge+blend")}
    return {"average": avg, "gain_over_best_fixed_granularity": gains}


def main() -> None:
    """Build the table and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "transfer-256.json"))
    ap.add_argument("--only", default="", help="compute only these sets now; the others' rows "
                    "come from earlier runs (a long table in several shorter runs)")
    ap.add_argument("--groups", default=",".join(GROUPS),
                    help="compute only these groups of systems; the others' values come from "
                         "the row an earlier run saved (" + ", ".join(GROUPS) + ")")
    args = ap.parse_args()
    sets = args.sets.split(",")
    groups = tuple(args.groups.split(","))
    t0 = time.perf_counter()
    for name in sets:
        if not (data_dir() / f"{name}-256.npz").exists():
            dump_set(name, 256)
    data = {name: load_set(name) for name in sets}
    spans = {name: load_spans(name) for name in sets}
    table = {}
    with threadpool_limits(1, user_api="blas"):
        for name in sets:
            row_file = data_dir() / f"table-{name}-256.json"
            if args.only and name not in args.only.split(","):
                table[name] = json.loads(row_file.read_text())  # computed by an earlier --only
                continue
            previous = (json.loads(row_file.read_text())
                        if groups != GROUPS and row_file.exists() else None)
            table[name] = evaluate_set(name, data, spans, groups=groups, previous=previous)
            row_file.write_text(json.dumps(table[name]))
            print(json.dumps({name: table[name]}), file=sys.stderr, flush=True)
    result = {"budget": 256, "mode": "hybrid", "sets": table, **summarise(table),
              "seconds": round(time.perf_counter() - t0, 1), "loadavg": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
