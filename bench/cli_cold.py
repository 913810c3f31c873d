"""Wall time of cold `mograg search` / `mograg ask` calls (a new process each time).

Usage: python bench/cli_cold.py --index DIR [--mograg /venv/bin/mograg ...] [--runs 5]
       [--query "..."] [--out F]
Each --mograg (repeatable; default: the `mograg` on PATH) is run --runs times per command,
alternating between them so that machine load hits all alike. Prints medians and all runs of
wall time, and of CPU time (user + system of the process): on a busy machine the CPU time
is the steadier figure, and close to the wall time the same call takes on an idle one.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import time

from _output import emit


def main() -> int:
    """Time the commands and print/save the result."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", required=True)
    ap.add_argument("--mograg", action="append", default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--query", default="What are the symptoms of glaucoma?")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    binaries = args.mograg or [shutil.which("mograg") or "mograg"]
    times: dict[str, dict[str, list[float]]] = {b: {"search": [], "ask": []} for b in binaries}
    cpu: dict[str, dict[str, list[float]]] = {b: {"search": [], "ask": []} for b in binaries}
    load_before = os.getloadavg()
    for _ in range(args.runs):
        for command in ("search", "ask"):
            for b in binaries:
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run([b, command, args.query, "--index", args.index], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[b][command].append(round(time.perf_counter() - t0, 3))
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                used = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
                cpu[b][command].append(round(used, 3))
    result = {
        "bench": "cli_cold", "index": args.index, "query": args.query,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "runs": {b: {c: {"median_s": statistics.median(v), "all_s": v,
                         "median_cpu_s": statistics.median(cpu[b][c]), "all_cpu_s": cpu[b][c]}
                     for c, v in cmds.items()}
                 for b, cmds in times.items()},
    }
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
