"""Readers during writes: searches must never fail while another process writes.

A writer subprocess adds and deletes documents in a loop (segments merge, superseded
generations are collected) while this process searches the same index, round-robin,
three ways: the CLI (``mograg search`` through its real entry point, a fresh index
open each time), the HTTP API (``POST /search`` on a server on loopback) and
``Index.open`` + search. Prints one JSON object: searches and errors per way.

    flock /tmp/mograg-heavy.lock nice -n 5 python bench/readers_during_writes.py \\
        --searches 1000 --out bench/results/readers_during_writes.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit

WRITER = """
import sys, time
from mograg.index.core import Index
from mograg.types import Document
ix_path, stop = sys.argv[1], sys.argv[2]
import os
i = 0
while not os.path.exists(stop):
    Index.open(ix_path).add([Document(f"w{i}", f"Writer note {i}: herons fish near reeds. "
                                                 "Kingfishers dive at dawn.")])
    if i >= 2:
        Index.open(ix_path).delete([f"w{i - 2}"])
    i += 1
print(i, flush=True)
"""
QUERIES = ["why do herons stand still", "what do kingfishers eat", "when do birds migrate",
           "writer note about reeds", "how deep is the lake"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--searches", type=int, default=1000, help="per way (CLI, API, open)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import httpx

    from mograg.cli import main as cli_main
    from mograg.index.core import Index
    from mograg.server.app import IndexService, create_app, running_server
    from mograg.types import Document

    def cli(*argv: str) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                cli_main(list(argv))
            except SystemExit as e:
                return (e.code if isinstance(e.code, int) else 1), err.getvalue()
        return 0, err.getvalue()

    with tempfile.TemporaryDirectory(prefix="mograg-rdw-") as tmp:
        root = Path(tmp) / "ix"
        Index.create(root).add([Document(f"seed{i}", f"Seed document {i}. " + q)
                                for i, q in enumerate(QUERIES)])
        stop = Path(tmp) / "stop"
        src = Path(__file__).resolve().parents[1] / "src"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(src), os.environ.get("PYTHONPATH", "")])}
        counts = {"cli": 0, "api": 0, "open": 0}
        errors: dict[str, list[str]] = {k: [] for k in counts}
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        service = IndexService(root, reload_interval=0.0)
        with running_server(create_app(service)) as url, httpx.Client(base_url=url) as http:
            writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(stop)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env)
            try:
                k = 0
                while min(counts.values()) < args.searches:
                    q = QUERIES[k % len(QUERIES)]
                    k += 1
                    code, err = cli("search", q, "--index", str(root), "--budget", "64",
                                    "--json")
                    counts["cli"] += 1
                    if code != 0:
                        errors["cli"].append(err.strip()[:300])
                    r = http.post("/search", json={"query": q, "budget": 64})
                    counts["api"] += 1
                    if r.status_code != 200:
                        errors["api"].append(f"{r.status_code} {r.text[:300]}")
                    try:
                        Index.open(root).search(q, budget=64)
                    except Exception as exc:
                        errors["open"].append(f"{type(exc).__name__}: {exc}"[:300])
                    counts["open"] += 1
                    if writer.poll() is not None:
                        break
            finally:
                stop.touch()
                out, werr = writer.communicate(timeout=300)
        n_writes = int(out.strip() or 0)
        final = Index.open(root)
        return emit({
            "bench": "readers_during_writes",
            "searches": counts,
            "errors": {k: len(v) for k, v in errors.items()},
            "error_examples": {k: v[:3] for k, v in errors.items() if v},
            "writer_iterations": n_writes,
            "writer_exit": writer.returncode,
            "writer_stderr_tail": werr[-300:],
            "generation_at_end": final.manifest["generation"],
            "segments_at_end": len(final.manifest["segments"]),
            "seconds": round(time.perf_counter() - t0, 1),
            "loadavg_before": load0,
            "loadavg_after": os.getloadavg(),
        }, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
