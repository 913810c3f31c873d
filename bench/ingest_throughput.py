"""`mograg index` end to end versus the embedder alone on the same texts.

For each source (files or directories ``mograg index`` accepts: JSONL, PDF ...):

1. ``mograg index SOURCES --index TMP`` with the default settings, as a fresh process (load,
   split, embed, pool, BM25, graphs, writes, fsync; process start and model load included),
   once with the default 5 levels and once with ``--levels 32`` (one level), and once more
   with ``--workers W`` if given (the multi-process ingestion pipeline);
2. the texts the 5-level index embedded (its directly embedded chunks: with pooled coarse
   levels, the finest level), embedded alone by a fresh ``OnnxMiniLM`` in this process,
   timed after the session is created.

Reports wall and CPU seconds of each (CPU of the child process via ``RUSAGE_CHILDREN``),
chunks/s, ``embedder_share = embed-alone seconds / index seconds`` (the issue's target is
>= 0.85) and ``five_levels_over_one`` (target <= 1.2), with load averages.

    PYTHONPATH=src python bench/ingest_throughput.py SOURCE... [--workers 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from _output import emit  # noqa: E402


def load() -> list[float]:
    """1/5/15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def run_cli(sources: list[str], index: Path, extra: list[str]) -> dict[str, Any]:
    """One ``mograg index`` process: wall and CPU seconds, and its summary line."""
    cmd = [sys.executable, "-m", "mograg.cli", "index", *sources, "--index", str(index),
           "--quiet", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    la = load()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"mograg index failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command": " ".join(["mograg", *cmd[3:]]), "seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2), "load_before": la, "load_after": load(),
            "output": proc.stdout.strip().splitlines()[-1:]}


def embedded_texts(index: Path) -> tuple[list[str], int]:
    """Texts the index embedded directly -- its chunk texts and, with document context, the
    context lines naming a section (embedded apart and mixed in) -- and its total number of
    chunks."""
    import numpy as np

    from mograg.index.core import Index
    from mograg.text.context import MIX_EVERY_LINE, chunk_contexts

    ix = Index.open(index)
    snap = ix.snapshot
    texts: list[str] = []
    for j in range(len(ix.levels)):
        direct = np.concatenate([np.asarray(s.hashes(j)).any(axis=1) for s in snap.segments])
        rows = np.flatnonzero(direct)
        if not len(rows):
            continue
        level = snap.level_texts(j)
        texts.extend(level[i] for i in rows.tolist())
        if ix.manifest.get("context"):
            first = snap.atoms[snap.levels[j]["first_atom"][rows]]
            texts.extend(t for t in chunk_contexts(first["doc"].tolist(), first["start"].tolist(),
                                                   snap.text, snap.metadata,
                                                   sectioned_only=ix.manifest["context"]
                                                   not in MIX_EVERY_LINE) if t)
    return texts, sum(snap.n_chunks(j) for j in range(len(ix.levels)))


def embed_alone(texts: list[str]) -> dict[str, Any]:
    """A fresh default embedder on ``texts`` (distinct ones, as the index embeds them)."""
    from mograg.embed.embedders import OnnxMiniLM

    distinct = list(dict.fromkeys(texts))
    emb = OnnxMiniLM()
    emb.embed(["warm up"])  # the session is created outside the timing
    la = load()
    c, t = time.process_time(), time.perf_counter()
    emb.embed(distinct)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"texts": len(distinct), "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "texts_per_s": round(len(distinct) / wall, 1), "load_before": la,
            "load_after": load()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", help="files or directories for mograg index")
    ap.add_argument("--workers", type=int, default=None,
                    help="also run the ingestion pipeline with this many workers")
    ap.add_argument("--out", default=None, help="also write the JSON to this file")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="mograg-ingest-"))
    out: dict[str, Any] = {"bench": "ingest_throughput", "sources": args.sources,
                           "cpus": os.cpu_count(), "loadavg_start": load()}
    try:
        five = run_cli(args.sources, tmp / "five", [])
        texts, chunks = embedded_texts(tmp / "five")
        five["chunks"] = chunks
        five["embedded_texts"] = len(set(texts))
        out["index_5_levels"] = five
        one = run_cli(args.sources, tmp / "one", ["--levels", "32"])
        one["chunks"] = embedded_texts(tmp / "one")[1]
        out["index_1_level"] = one
        if args.workers is not None:
            w = run_cli(args.sources, tmp / "workers", ["--workers", str(args.workers)])
            w["chunks"] = chunks
            out[f"index_5_levels_workers_{args.workers}"] = w
        alone = embed_alone(texts)
        out["embedder_alone_same_texts"] = alone
        for key in [k for k in out if k.startswith("index_5")]:
            r = out[key]
            r["embedded_texts_per_s"] = round(len(set(texts)) / r["seconds"], 1)
            r["embedder_share"] = round(alone["seconds"] / r["seconds"], 3)
            r["embedder_share_cpu"] = round(alone["cpu_seconds"] / r["cpu_seconds"], 3)
        out["five_levels_over_one"] = round(five["seconds"] / one["seconds"], 3)
        out["five_levels_over_one_cpu"] = round(five["cpu_seconds"] / one["cpu_seconds"], 3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["loadavg_end"] = load()
    return emit(out, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
