"""How long a small write takes on a large index: add / replace / delete one document.

Copies the cached eval index of a set (built once by `mograg eval --docs`, see
mograg.eval.evaluate.index_docs_cached) to a temporary directory and times single-document
writes there. Prints one JSON object.
Usage: PYTHONPATH=src python bench/write_latency.py [--evalset ../shared/evalsets/medquad-dev]
       [--writes 5] [--out bench/results/write_latency.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _output import emit
from mograg.eval.commands import index_docs_cached
from mograg.index.core import Index, shared_embedder
from mograg.types import Document

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("Glaucoma is a group of eye diseases that damage the optic nerve. It is often linked "
        "to high pressure inside the eye. Regular eye exams find it early. ")


def main() -> None:
    """Time single-document writes and print the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--evalset", default=str(ROOT.parent / "shared" / "evalsets" / "medquad-dev"))
    ap.add_argument("--writes", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    docs = Path(args.evalset) / "docs.jsonl.gz"
    if not docs.exists():
        print(f"no eval set at {docs}; nothing to do", file=sys.stderr)
        return
    shared_embedder(None)
    cached = index_docs_cached(docs)
    with tempfile.TemporaryDirectory(prefix="mograg-write-bench-") as tmp:
        shutil.copytree(cached.root, Path(tmp) / "ix")
        ix = Index.open(Path(tmp) / "ix")
        chunks = ix.snapshot.n_chunks(0)
        timings: dict[str, list[float]] = {"add": [], "replace": [], "delete": []}
        load0 = os.getloadavg()
        for k in range(args.writes):
            for kind, op in (
                ("add", lambda k=k: ix.add([Document(f"bench-{k}", TEXT)])),
                ("replace", lambda k=k: ix.add([Document(f"bench-{k}", TEXT + " Updated.")])),
                ("delete", lambda k=k: ix.delete([f"bench-{k}"])),
            ):
                t = time.perf_counter()
                op()
                timings[kind].append(time.perf_counter() - t)
        segments = len(ix.manifest["segments"])
    emit({
        "bench": "write_latency", "evalset": Path(args.evalset).name, "finest_chunks": chunks,
        "writes": args.writes, "segments_at_end": segments,
        **{f"{k}_seconds_median": round(statistics.median(v), 3) for k, v in timings.items()},
        **{f"{k}_seconds_max": round(max(v), 3) for k, v in timings.items()},
        "loadavg_before": load0, "loadavg_after": os.getloadavg(),
    }, args.out)


if __name__ == "__main__":
    main()
