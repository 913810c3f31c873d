"""Wall time of cold `mograg search` / `mograg ask` calls (a new process each time).

Usage: python bench/cli_cold.py --index DIR [--mograg /venv/bin/mograg ...] [--runs 5]
       [--query "..."] [--serve /venv/bin/mograg] [--out F]
Each --mograg (repeatable; default: the `mograg` on PATH) is run --runs times per command,
alternating between them so that machine load hits all alike. Prints medians and all runs of
wall time, and of CPU time (user + system of the process): on a busy machine the CPU time
is the steadier figure, and close to the wall time the same call takes on an idle one.
With --serve, that mograg's `serve` runs for the index meanwhile (started before, stopped
after the runs; its own CPU is not counted), so a CLI that can use it does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path

from _output import emit


def main() -> int:
    """Time the commands and print/save the result."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--index", required=True)
    ap.add_argument("--mograg", action="append", default=None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--query", default="What are the symptoms of glaucoma?")
    ap.add_argument("--serve", default=None, help="run this mograg's `serve` meanwhile")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    server = _start_server(args.serve, args.index) if args.serve else None
    try:
        result = _time(args)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    result["server"] = args.serve
    return emit(result, args.out)


def _start_server(mograg: str, index: str) -> subprocess.Popen[bytes]:
    """`mograg serve --port 0` for the index, once its serve.json names it."""
    endpoint = Path(index) / "serve.json"
    proc = subprocess.Popen([mograg, "serve", "--index", index, "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(endpoint.read_text())["pid"] == proc.pid:
                return proc
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def _time(args: argparse.Namespace) -> dict:
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
    return {
        "bench": "cli_cold", "index": args.index, "query": args.query,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "runs": {b: {c: {"median_s": statistics.median(v), "all_s": v,
                         "min_s": min(v), "median_cpu_s": statistics.median(cpu[b][c]),
                         "min_cpu_s": min(cpu[b][c]), "all_cpu_s": cpu[b][c]}
                     for c, v in cmds.items()}
                 for b, cmds in times.items()},
    }


if __name__ == "__main__":
    raise SystemExit(main())
