"""Rebuild a cached dev-set index with today's code, reusing an older copy's vectors.

After a change to segmentation (chunks move, most chunk texts stay the same) every dev-set
index must be rebuilt; embedding medquad-dev's ~93k chunks from scratch costs an hour of a
loaded 2-core box. This builds the index exactly as ``mograg.eval.commands.index_docs_cached``
does (same settings, its cache key for today's splitter, graph and derived data rebuilt) but
gives the segment builder the old index's vectors by content hash, the same reuse
``Index.add`` does when documents are re-added: only chunks whose text is new are embedded.
(Vectors of equal texts equal a fresh embedding up to batch padding noise, ~1e-6.)

Usage: MOGRAG_CACHE=DIR python bench/reindex_cached.py SET OLD_INDEX_DIR [--graph]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from mograg.eval.commands import cached_index_dir, index_docs_cached
from mograg.index.core import Index
from mograg.index.segments import SegmentBuilder, WriteReport, existing_vectors
from mograg.text.documents import load_documents

EVALSETS = Path(__file__).resolve().parents[2] / "shared" / "evalsets"


def main() -> int:
    """Build the set's cached index under $MOGRAG_CACHE from the old index's vectors."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("set")
    ap.add_argument("old", help="an older cached index of the same docs (same settings)")
    ap.add_argument("--graph", action="store_true", help="with the MoGG graph")
    args = ap.parse_args()
    docs_path = EVALSETS / args.set / "docs.jsonl.gz"
    old = Index.open(args.old)
    if old.manifest.get("context"):
        raise SystemExit(f"{args.old}: built with document context; give a plain index")
    target = cached_index_dir(docs_path, old.manifest["levels"], old.manifest["level_vectors"])
    if (target / "manifest.json").exists():
        raise SystemExit(f"{target} exists already; nothing to do")
    t0 = time.perf_counter()
    documents, problems = load_documents([docs_path])
    if problems:
        raise SystemExit(f"{problems[0]} ({len(problems)} problem(s) in {docs_path})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        ix = Index.create(tmp / "ix", levels=old.manifest["levels"],
                          level_vectors=old.manifest["level_vectors"], graph=args.graph)
        report = WriteReport()
        builder = SegmentBuilder(ix.manifest, ix.embedder,
                                 lambda keys: existing_vectors(old.snapshot, keys))
        segment = builder.build(documents, report)
        assert segment is not None
        ix.commit_segment(segment)
        (tmp / "ix").rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # the same cache key as index_docs_cached computes (it must find and open this index)
    opened = index_docs_cached(docs_path, graph=args.graph)
    assert opened.root == target, (opened.root, target)
    print(json.dumps({"set": args.set, "target": str(target), "chunks": report.chunks,
                      "embedded": report.embedded, "reused": report.reused,
                      "pooled": report.pooled, "seconds": round(time.perf_counter() - t0, 1),
                      "loadavg": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
