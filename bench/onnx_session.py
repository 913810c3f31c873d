"""CPU time of creating MiniLM's onnxruntime session: optimised at load (what mograg did) vs
the optimised graph cached by mograg.embed.onnx_cache, and whether both embed identically.

Usage: python bench/onnx_session.py [--runs 5] [--out F]
Each run is a fresh process (a session in a warm process would flatter both). The cache
lives in a temporary MOGRAG_CACHE, filled once before the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from typing import Any

from _output import emit

CHILD = r"""
import json, os, sys, time
import numpy as np
from mograg.embed.embedders import OnnxMiniLM
emb = OnnxMiniLM()
c0, t0 = time.process_time(), time.perf_counter()
emb._load()
c1, t1 = time.process_time(), time.perf_counter()
vecs = emb.embed(["What are the symptoms of glaucoma?", "The tumor has caused glaucoma.",
                  "Herons eat fish in winter; otters eat crabs."])
print(json.dumps({"cpu": c1 - c0, "wall": t1 - t0, "vectors": vecs.tobytes().hex()}))
"""


def _run(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(done.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="onnx-bench-") as cache:
        modes = {"optimised at load": {**os.environ, "MOGRAG_ONNX_CACHE": "off"},
                 "cached graph": {**os.environ, "MOGRAG_CACHE": cache}}
        first = _run(modes["cached graph"])  # optimises and saves
        load_before = os.getloadavg()
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for _ in range(args.runs):
            for mode, env in modes.items():
                runs[mode].append(_run(env))
        load_after = os.getloadavg()
    vectors = {r["vectors"] for rs in runs.values() for r in rs} | {first["vectors"]}
    return emit({
        "bench": "onnx_session", "loadavg_before": load_before, "loadavg_after": load_after,
        "first_call_with_empty_cache_cpu_s": round(float(first["cpu"]), 3),
        "identical_vectors": len(vectors) == 1,
        "modes": {m: {"median_cpu_s": round(statistics.median(float(r["cpu"]) for r in rs), 3),
                      "median_wall_s": round(statistics.median(float(r["wall"]) for r in rs), 3),
                      "all_cpu_s": [round(float(r["cpu"]), 3) for r in rs]}
                  for m, rs in runs.items()},
    }, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
