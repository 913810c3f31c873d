"""Single-document writes to a large existing index (e.g. bench/scale.py's 1M synthetic one).

Works on a hard-linked copy (same file system; the original is never modified: writes
create new files and only unlink the copy's names) and times, each with wall and process
CPU seconds and the load average:

* ``first_add``: one ~500-token document through a fresh ``Index.open`` handle;
* ``second_add``: another one through the same handle;
* ``delete_from_small_segment``: the first added document again;
* ``first_add_fresh_handle``: one more add through a new handle;
* with ``--big-delete DOC_ID``: deleting that document from the big segment (the segment is
  rewritten; its graphs and BM25 postings are inherited, not rebuilt).

    PYTHONPATH=src python bench/write_large.py /work/tmp-scale/idx/synthetic-1000000
        [--work DIR] [--big-delete doc-0000007] [--out bench/results/write_large-1m.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _output import emit
from mograg.index.core import Index
from mograg.types import Document

TEXT = " ".join(f"Sentence number {i} about the otter that lives by the river delta."
                for i in range(40))


def timed(f: Callable[[], object]) -> dict[str, Any]:
    """Wall and CPU seconds of ``f()``, with the load average after it."""
    c, t = time.process_time(), time.perf_counter()
    f()
    return {"s": round(time.perf_counter() - t, 3), "cpu_s": round(time.process_time() - c, 3),
            "load": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", help="an existing index directory (not modified)")
    ap.add_argument("--work", default=None,
                    help="where the hard-linked copy goes (same file system; default: a "
                         "temporary directory beside the index)")
    ap.add_argument("--big-delete", default=None, help="also delete this document id")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    src = Path(args.index)
    work = Path(args.work or tempfile.mkdtemp(prefix="write-large-", dir=src.parent))
    copy = work / "copy"
    shutil.copytree(src, copy, copy_function=os.link)  # hard links: no bytes copied
    out: dict[str, Any] = {"bench": "write_large", "index": str(src),
                           "mograg": sys.modules["mograg"].__file__,
                           "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        ix = Index.open(copy)
        ix.embedder.embed(["warm up"])  # model load is not part of a write
        out["first_add"] = timed(lambda: ix.add([Document("bench-write-1", TEXT)]))
        out["second_add"] = timed(lambda: ix.add([Document("bench-write-2", TEXT + " More.")]))
        out["delete_from_small_segment"] = timed(lambda: ix.delete(["bench-write-1"]))
        fresh = Index.open(copy)
        out["first_add_fresh_handle"] = timed(
            lambda: fresh.add([Document("bench-write-3", TEXT + " Again.")]))
        if args.big_delete:
            out["delete_from_big_segment"] = timed(lambda: fresh.delete([args.big_delete]))
    finally:
        shutil.rmtree(work if args.work is None else copy, ignore_errors=True)
    return emit(out, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
