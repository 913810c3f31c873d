"""Rebuild the shipped granularity model from the dev sets in ../shared/evalsets.

Indexes each set once (cached under ``$MOGRAG_CACHE``, graph on), collects every
question's transferable features and per-granularity scores at budget 256 (first 1,000
questions of squad-dev and medquad-dev), fits :func:`mograg.granularity_model.fit_model`
on all seven sets pooled (each set weighted equally) and writes
``src/mograg/data/granularity-model-v<N>.npz`` (per-query blend weights) and
``span-model-v<N>.npz`` (per-span evidence estimates). Deterministic: the same data give the
same bytes.

Usage: python bench/train_default_router.py [--sets a,b,...] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from mograg.eval.tune import SYNTHETIC_SHIFT, synthetic_shift
from mograg.retrieval.granularity_model import SHIPPED_FILE, fit_default
from mograg.retrieval.spans import SHIPPED_SPAN_FILE, fit_default_spans
from transfer_data import EVALSETS, SETS, data_dir, dump_set, load_set, load_spans, load_synthetic

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Collect what is missing, fit, write the package data file."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--out", default=str(ROOT / "src" / "mograg" / "data"),
                    help="directory the model files are written to")
    args = ap.parse_args()
    if not EVALSETS.exists():
        print(f"no eval sets at {EVALSETS}; nothing to do", file=sys.stderr)
        sys.exit(1)
    sets = args.sets.split(",")
    data = []
    for name in sets:
        if not (data_dir() / f"{name}-256.npz").exists():
            dump_set(name, 256)
        data.append(load_set(name))
    model = fit_default([d["x"] for d in data], [d["scores"] for d in data],
                        data[0]["meta"]["names"], sets)
    # the bias of `mograg tune`'s synthetic questions on the training corpora, which tune
    # subtracts from what a new corpus's synthetic questions say
    syn = [load_synthetic(name, shape="sentence") for name in sets]
    model.meta[SYNTHETIC_SHIFT] = synthetic_shift(model, [z["x"] for z in syn],
                                                  [z["scores"] for z in syn])
    spans = [load_spans(name) for name in sets]
    span_model = fit_default_spans([s["x"][s["keep"]] for s in spans],
                                   [s["y"][s["keep"]] for s in spans], sets)
    out = Path(args.out)
    written = {}
    for path, blob in ((out / SHIPPED_FILE, model.to_bytes()),
                       (out / SHIPPED_SPAN_FILE, span_model.to_bytes())):
        path.write_bytes(blob)
        written[path.name] = {"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    print(json.dumps({"dir": str(out), "files": written, "sets": sets,
                      "questions": model.meta["n_train"], "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
