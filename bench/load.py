"""Load benchmark for `mograg serve`: N concurrent clients on loopback for T seconds.

Starts the server itself in a subprocess on 127.0.0.1 (``--index DIR``) or targets a
running one (``--url http://127.0.0.1:PORT``, loopback only). Each client loops
``POST /search`` with questions from ``--questions`` (an eval set's
questions.jsonl[.gz]) until the time is up; with ``--write-every S`` one more task adds a
document with ``POST /documents`` every S seconds meanwhile (and deletes them after).
With ``--idle-sockets N``, N connections that never send a byte are held open from
another loopback address (``--idle-source``, default 127.0.0.2) for the whole run and
re-opened whenever the server closes them: the clients must not notice. ``--runs K``
repeats the run against the same server and reports its RSS after each.
Prints one JSON object: requests/s, p50/p90/p99 latency, error count, write stats.

    python bench/load.py --index /tmp/squad-ix \\
        --questions /work/shared/evalsets/squad-dev/questions.jsonl.gz \\
        --clients 50 --seconds 60 --write-every 5
    python bench/load.py --index /tmp/squad-ix --clients 20 --seconds 60 \\
        --idle-sockets 2000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
FALLBACK_QUESTIONS = [
    "What is the main topic of this document?",
    "When was it founded?",
    "Who won the final?",
    "Why did the project stop?",
    "How many people live there?",
    "What does the report recommend?",
]


def read_questions(path: str | None, limit: int = 2000) -> list[str]:
    """Questions from an eval set file (``question`` field), else a fixed list."""
    if not path:
        return FALLBACK_QUESTIONS
    opener = gzip.open if path.endswith(".gz") else open
    out: list[str] = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line)["question"])
            if len(out) >= limit:
                break
    return out or FALLBACK_QUESTIONS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: str, key: str, timeout: float = 180.0) -> tuple[subprocess.Popen, str]:
    """`mograg serve`-equivalent uvicorn in a subprocess on loopback; wait for /health."""
    port = free_port()
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "MOGRAG_API_KEY": key,
           "PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH"))
                                         if p)}
    code = ("import sys; from mograg.server.app import serve; "
            "serve(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')")
    proc = subprocess.Popen([sys.executable, "-c", code, index, str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: the server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise SystemExit("error: the server did not become healthy in time")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q / 100 * len(s)))], 2)


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process (Linux), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def hold_idle(url: str, n: int, source: str, until: float) -> dict:
    """Keep ``n`` silent connections from ``source`` open until ``until``; re-open each
    one a second after the server closes it. Returns what happened to them."""
    u = urlparse(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    stats: dict[str, Any] = {"opened": 0, "closed_by_server": 0, "refused": 0,
                             "open_at_end": 0, "first_close_after_s": None}
    t0 = time.monotonic()

    async def one() -> None:
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection(host, port,
                                                               local_addr=(source, 0))
            except OSError:
                stats["refused"] += 1
                await asyncio.sleep(1.0)
                continue
            stats["opened"] += 1
            try:
                data = await asyncio.wait_for(reader.read(1024), until - time.monotonic())
            except (TimeoutError, asyncio.TimeoutError):
                stats["open_at_end"] += 1
                writer.close()
                return
            except OSError:
                data = b""
            del data  # whatever the server said (a 408, or nothing): it closed
            stats["closed_by_server"] += 1
            if stats["first_close_after_s"] is None:
                stats["first_close_after_s"] = round(time.monotonic() - t0, 2)
            writer.close()
            await asyncio.sleep(1.0)

    await asyncio.gather(*(one() for _ in range(n)))
    return stats


async def run(args: argparse.Namespace, url: str, key: str | None) -> dict:
    questions = read_questions(args.questions)
    deadline = time.monotonic() + args.seconds
    latencies: list[float] = []
    errors: dict[str, int] = {}
    generations: set[str] = set()
    writes: list[float] = []
    write_errors: list[str] = []
    added: list[str] = []
    limits = httpx.Limits(max_connections=args.clients + 2, max_keepalive_connections=args.clients)

    def fail(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as client:

        async def reader(k: int) -> None:
            i = k
            while time.monotonic() < deadline:
                body = {"query": questions[i % len(questions)], "budget": args.budget}
                i += args.clients
                t0 = time.perf_counter()
                try:
                    r = await client.post("/search", json=body)
                except httpx.HTTPError as exc:
                    fail(type(exc).__name__)
                    continue
                if r.status_code != 200:
                    fail(f"HTTP {r.status_code}")
                    continue
                latencies.append(1000 * (time.perf_counter() - t0))
                generations.add(r.headers.get("x-mograg-generation", "?"))

        async def writer() -> None:
            n = 0
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            while time.monotonic() + args.write_every < deadline:
                await asyncio.sleep(args.write_every)
                doc_id = f"bench-load-{os.getpid()}-{n}"
                text = " ".join(f"Load test note {n}, sentence {j}: {questions[j % len(questions)]}"
                                for j in range(40))
                t0 = time.perf_counter()
                try:
                    r = await client.post("/documents", json=[{"id": doc_id, "text": text}],
                                          headers=headers, timeout=max(args.timeout, 300))
                except httpx.HTTPError as exc:
                    write_errors.append(type(exc).__name__)
                    continue
                if r.status_code == 200:
                    writes.append(1000 * (time.perf_counter() - t0))
                    added.append(doc_id)
                else:
                    write_errors.append(f"HTTP {r.status_code}: {r.text[:120]}")
                n += 1

        idle_task = None
        if args.idle_sockets:
            idle_task = asyncio.create_task(
                hold_idle(url, args.idle_sockets, args.idle_source, deadline))
            await asyncio.sleep(min(2.0, args.seconds / 10))  # let them connect first
        t_start = time.perf_counter()
        write_task = asyncio.create_task(writer()) if args.write_every > 0 else None
        await asyncio.gather(*(reader(k) for k in range(args.clients)))
        elapsed = time.perf_counter() - t_start
        if write_task is not None:
            await write_task
        idle = await idle_task if idle_task is not None else None
        if added and not args.keep:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            for doc_id in added:
                await client.delete(f"/documents/{doc_id}", headers=headers, timeout=300)

    n_err = sum(errors.values())
    return {
        "url": url,
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "budget": args.budget,
        "requests": len(latencies),
        "errors": n_err,
        "error_kinds": errors,
        "requests_per_s": round(len(latencies) / elapsed, 2) if elapsed else None,
        "latency_ms": {"p50": pct(latencies, 50), "p90": pct(latencies, 90),
                       "p99": pct(latencies, 99), "max": pct(latencies, 100)},
        "writes": {"count": len(writes), "errors": len(write_errors),
                   "error_kinds": write_errors[:5], "p50_ms": pct(writes, 50),
                   "max_ms": pct(writes, 100)},
        "generations_seen": sorted(generations),
        "idle_sockets": {"requested": args.idle_sockets, "source": args.idle_source, **idle}
        if idle is not None else None,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--index", help="index directory: serve it in a subprocess")
    where.add_argument("--url", help="a running server on loopback, e.g. http://127.0.0.1:8000")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--budget", type=int, default=256)
    p.add_argument("--questions", help="questions.jsonl[.gz] of an eval set")
    p.add_argument("--write-every", type=float, default=0.0,
                   help="POST /documents every S seconds meanwhile (0: no writes)")
    p.add_argument("--keep", action="store_true", help="keep the documents the writer added")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    p.add_argument("--idle-sockets", type=int, default=0,
                   help="hold N silent connections open meanwhile (0..5000)")
    p.add_argument("--idle-source", default="127.0.0.2",
                   help="loopback address the idle sockets connect from")
    p.add_argument("--runs", type=int, default=1, help="consecutive runs on the same server")
    args = p.parse_args(argv)
    if not (1 <= args.clients <= 1000 and 0 < args.seconds <= 3600):
        p.error("use 1..1000 clients and 0..3600 seconds")
    if not (0 <= args.idle_sockets <= 5000 and 1 <= args.runs <= 10):
        p.error("use 0..5000 idle sockets and 1..10 runs")
    if not args.idle_source.startswith("127."):
        p.error("--idle-source must be a loopback address (127.x.y.z)")
    if args.idle_sockets:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, max(soft, args.idle_sockets + args.clients + 256))
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    proc = None
    if args.index:
        new_key = secrets.token_urlsafe(24)
        key: str | None = new_key
        proc, url = start_server(args.index, new_key)
    else:
        url = args.url.rstrip("/")
        if urlparse(url).hostname not in LOOPBACK:
            p.error("--url must be a loopback address (127.0.0.1, localhost, ::1)")
        key = os.environ.get("MOGRAG_API_KEY")
        if args.write_every > 0 and not key:
            p.error("writes need the server's key in MOGRAG_API_KEY")
    results = []
    try:
        for _ in range(args.runs):
            result = asyncio.run(run(args, url, key))
            result["server_rss_mb"] = rss_mb(proc.pid) if proc is not None else None
            results.append(result)
    finally:
        if proc is not None:
            stop_server(proc)
    out = results[0] if len(results) == 1 else {
        "runs": results,
        "server_rss_mb_after_each_run": [r["server_rss_mb"] for r in results],
        "errors": sum(r["errors"] for r in results),
    }
    out["loadavg"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
