"""What the MoGG graph costs: build seconds and bytes next to the whole index build.

Indexes each eval set from scratch with the graph on (default settings), then rebuilds
the graph alone a few times from the committed snapshot. Prints one JSON object.
Usage: PYTHONPATH=src python bench/graph_build.py [--sets squad-dev,musique-train]
       [--repeat 3] [--out bench/results/graph_build.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _output import emit
from mograg.graph.build import GraphSettings, build_graph
from mograg.index.core import Index, shared_embedder
from mograg.text.documents import load_documents

ROOT = Path(__file__).resolve().parents[1]
EVALSETS = ROOT.parent / "shared" / "evalsets"


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(name: str, repeat: int) -> dict[str, object]:
    """Index one set with the graph; time the graph inside it and alone."""
    docs, problems = load_documents([EVALSETS / name / "docs.jsonl.gz"])
    if problems:
        raise SystemExit(f"{name}: {problems[0]}")
    with tempfile.TemporaryDirectory(prefix="mograg-graph-bench-") as tmp:
        ix = Index.create(Path(tmp) / "ix", graph=GraphSettings())
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        ix.add(docs)
        index_s = time.perf_counter() - t0
        stats = dict(ix.manifest["graph_stats"])
        snap = ix.snapshot
        alone = []
        for _ in range(repeat):
            t = time.perf_counter()
            build_graph(snap, GraphSettings())
            alone.append(time.perf_counter() - t)
        total = _dir_bytes(ix.root)
        graph_bytes = _dir_bytes(ix.root / "graph")
    return {
        "set": name, "docs": len(docs), "finest_chunks": stats["nodes"],
        "mention_edges": stats["mention_edges"], "index_seconds": round(index_s, 1),
        "graph_seconds_in_index": stats["seconds"],
        "graph_seconds_alone_min": round(min(alone), 3),
        "graph_share_of_index_time": round(stats["seconds"] / index_s, 4),
        "index_bytes": total, "graph_bytes": graph_bytes,
        "graph_share_of_bytes": round(graph_bytes / total, 4),
        "loadavg_before": load0, "loadavg_after": os.getloadavg(),
    }


def main() -> None:
    """Measure each set and print the JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default="squad-dev,musique-train,hotpotqa-train,chroma-dev")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if not EVALSETS.exists():
        print(f"no eval sets at {EVALSETS}; nothing to do", file=sys.stderr)
        return
    shared_embedder(None)  # load the model before timing
    rows = []
    for name in args.sets.split(","):
        rows.append(measure(name, args.repeat))
        print(rows[-1], file=sys.stderr, flush=True)
    emit({"bench": "graph_build", "settings": GraphSettings().to_dict(), "sets": rows}, args.out)


if __name__ == "__main__":
    main()
