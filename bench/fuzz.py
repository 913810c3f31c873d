"""Fuzz campaign: hostile and randomly damaged inputs through the real CLI.

Every input is one bad file (or file-system object) next to a good ``good.txt`` in a
fresh folder, indexed with ``mograg index FOLDER --index IX``; then a search with a
damaged query runs on the result. The inputs: issue 17's named cases, FIFOs, device
symlinks, sockets and non-UTF-8 names, plus random mutations (bit flips, cuts,
repeats, splices of known-bad snippets) of small valid txt, md, html, pdf, jsonl and
jsonl.gz files. A worker process runs the CLI in-process (the ONNX model stays
loaded); an input still running after ``--timeout`` seconds is a hang (the worker is
killed and restarted).

Outcomes (counted per input): ``ok`` (exit 0), ``one_line_error`` (exit 1/2, every
message one ``error: file[:line]: why`` line), ``traceback``, ``hang``,
``good_file_lost`` (good.txt not indexed), ``internal_error_line`` (the generic guard
caught an unexpected exception: one line, but a bug). Search outcomes likewise.

    flock /tmp/mograg-heavy.lock nice -n 5 python bench/fuzz.py --inputs 1000 \\
        --out bench/results/fuzz.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # hostile.py: the shared fixtures
sys.path.insert(0, str(HERE))

import hostile  # type: ignore[import-not-found]  # noqa: E402
from _output import emit  # noqa: E402

GOOD = "Kingfishers dive for minnows from low branches over clear streams."
QUERY = "what do herons eat in winter"
MAX_INPUT_BYTES = 5_000_000


# --------------------------------------------------------------------------- worker


def _worker() -> None:
    """Read one task (JSON) per line on stdin; answer one JSON line on the saved stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    from mograg.cli import main
    from mograg.index.core import Index

    def run_cli(args: list[str]) -> dict[str, Any]:
        out, err = io.StringIO(), io.StringIO()
        code: int | None = None
        tb = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                tb = traceback.format_exc()
        return {"code": code, "stderr": err.getvalue(), "traceback": tb}

    for line in sys.stdin:
        task = json.loads(line)
        res = run_cli(["index", task["folder"], "--index", task["index"], "--quiet"])
        try:
            ids = set(Index.open(task["index"]).snapshot.doc_ids)
            res["good_indexed"] = task["good_id"] in ids
        except Exception as e:
            res["good_indexed"] = False
            res["open_error"] = f"{type(e).__name__}: {e}"[:300]
        query = os.fsdecode(task["query"].encode("latin-1"))
        res["search"] = run_cli(["search", query, "--index", task["index"], "--json"])
        proto.write(json.dumps(res) + "\n")


# --------------------------------------------------------------------------- inputs


def _fs_cases() -> list[dict[str, Any]]:
    """File-system objects that are not plain files (made in the input's folder)."""
    return [
        {"name": "fifo.txt", "kind": "fifo"},
        {"name": "sub/fifo.md", "kind": "fifo"},
        {"name": "zero.txt", "kind": "symlink", "target": "/dev/zero"},
        {"name": "random.jsonl", "kind": "symlink", "target": "/dev/urandom"},
        {"name": "sock.html", "kind": "socket"},
        {"name": "caf\\xe9.txt", "kind": "badname"},
        {"name": "dangling.txt", "kind": "symlink", "target": "/nonexistent/file"},
        {"name": "dir.txt", "kind": "dir"},
    ]


def inputs(n_mutations: int, seed: int) -> list[dict[str, Any]]:
    """Named cases, file-system cases, then ``n_mutations`` random mutations."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for name, (suffix, data) in sorted(hostile.named_cases().items()):
        out.append({"case": f"named:{name}", "name": f"bad{suffix}", "data": data})
    for fs in _fs_cases():
        out.append({"case": f"fs:{fs['name']}", **fs})
    seeds = hostile.seeds()
    for i in range(n_mutations):
        suffix = hostile.SUFFIXES[i % len(hostile.SUFFIXES)]
        data = hostile.mutate(seeds[suffix], rng, suffix)[:MAX_INPUT_BYTES]
        out.append({"case": f"mutation:{suffix}", "name": f"bad{suffix}", "data": data})
    return out


def _damaged_query(rng: random.Random) -> str:
    q = hostile.mutate(QUERY.encode(), rng, ".txt")[:2000] or b"x"
    return q.decode("latin-1")  # bytes carried through JSON; the worker makes a str


def _materialise(case: dict[str, Any], folder: Path) -> None:
    (folder / "sub").mkdir(parents=True)
    (folder / "good.txt").write_text(GOOD, encoding="utf-8")
    kind = case.get("kind")
    if kind is None:
        (folder / case["name"]).write_bytes(case["data"])
        return
    if kind == "badname":
        (folder / os.fsdecode(b"caf\xe9.txt")).write_text(GOOD + " Again.", encoding="utf-8")
        return
    path = folder / case["name"]
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        os.symlink(case["target"], path)
    elif kind == "dir":
        path.mkdir()
        (path / "inner.txt").write_text("Inner file.", encoding="utf-8")
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()


# --------------------------------------------------------------------------- driver


class Worker:
    """The worker subprocess, restarted after a hang."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )

    def run(self, task: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(task) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return None
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            return {"code": None, "stderr": "", "traceback": "worker died"}
        return json.loads(line)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _classify(res: dict[str, Any] | None) -> str:
    if res is None:
        return "hang"
    if res.get("traceback") or "Traceback" in res.get("stderr", ""):
        return "traceback"
    if not res.get("good_indexed"):
        return "good_file_lost"
    if "please report" in res.get("stderr", ""):
        return "internal_error_line"
    if res["code"] == 0:
        return "ok"
    lines = [x for x in res["stderr"].splitlines() if x.strip()]
    problem_lines = [x for x in lines if x.startswith("error: ")]
    if res["code"] in (1, 2) and problem_lines:
        return "one_line_error"
    return "other"


def _classify_search(res: dict[str, Any] | None) -> str:
    if res is None:
        return "hang"
    s = res["search"]
    if s.get("traceback") or "Traceback" in s.get("stderr", ""):
        return "traceback"
    if s["code"] == 0:
        return "ok"
    return "one_line_error" if s["stderr"].count("\n") == 1 else "other"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=1000, help="random mutations (named and "
                    "file-system cases come on top)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per input")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker()
        return 0
    rng = random.Random(args.seed + 1)
    cases = inputs(args.inputs, args.seed)
    worker = Worker()
    counts: dict[str, Counter[str]] = {}
    search_counts: Counter[str] = Counter()
    findings: list[dict[str, Any]] = []
    seconds: list[float] = []
    load0 = os.getloadavg()
    t_start = time.perf_counter()
    try:
        for i, case in enumerate(cases):
            with tempfile.TemporaryDirectory(prefix="mograg-fuzz-") as tmp:
                folder = Path(tmp) / "in"
                _materialise(case, folder)
                task = {"folder": str(folder), "index": str(Path(tmp) / "ix"),
                        "good_id": f"{folder.as_posix()}/good.txt",
                        "query": _damaged_query(rng)}
                t0 = time.perf_counter()
                res = worker.run(task, args.timeout)
                seconds.append(time.perf_counter() - t0)
                outcome = _classify(res)
                counts.setdefault(case["case"].split(":")[0], Counter())[outcome] += 1
                search_counts[_classify_search(res)] += 1
                if outcome not in ("ok", "one_line_error") and len(findings) < 50:
                    keep = Path(HERE / "results" / "fuzz-findings")
                    keep.mkdir(parents=True, exist_ok=True)
                    kept = keep / f"{i:05d}-{case['case'].replace(':', '-').replace('/', '_')}"
                    shutil.copytree(folder, kept, symlinks=True, dirs_exist_ok=True,
                                    ignore_dangling_symlinks=True,
                                    ignore=lambda d, names: [
                                        n for n in names if not os.path.isfile(
                                            os.path.join(d, n)) and not os.path.isdir(
                                            os.path.join(d, n))])
                    findings.append({"input": i, "case": case["case"], "outcome": outcome,
                                     "kept": str(kept.relative_to(HERE.parent)),
                                     "detail": ((res or {}).get("traceback") or
                                                (res or {}).get("stderr", ""))[-600:]})
            if (i + 1) % 100 == 0:
                print(f"{i + 1}/{len(cases)} inputs", file=sys.stderr, flush=True)
    finally:
        worker.stop()
    total: Counter[str] = Counter()
    for c in counts.values():
        total.update(c)
    seconds.sort()
    return emit({
        "bench": "fuzz",
        "inputs": len(cases),
        "seed": args.seed,
        "timeout_seconds": args.timeout,
        "outcomes": dict(total),
        "outcomes_by_kind": {k: dict(v) for k, v in counts.items()},
        "search_outcomes": dict(search_counts),
        "seconds_per_input_median": round(seconds[len(seconds) // 2], 3) if seconds else None,
        "seconds_per_input_max": round(seconds[-1], 3) if seconds else None,
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "findings": findings,
        "loadavg_before": load0,
        "loadavg_after": os.getloadavg(),
    }, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
