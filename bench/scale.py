"""Search latency of a large index (issue 15): 10k / 100k / 1M finest chunks, 5 levels.

Builds synthetic indexes without an embedder (writing one is `Index.commit_segment`'s
job, the embedder is measured elsewhere): documents of 64 eight-word sentences drawn
from a Zipf vocabulary (so BM25 has realistic postings), levels 32..512 tokens, finest
vectors clustered by document topic (4,096 topics, like real embeddings, not uniform
noise) and coarse vectors pooled from their children, exactly as ``level_vectors=pool``
does. Then, in a fresh process per size (so RSS is a server's, not the builder's):

  * open seconds (``Index.open`` + snapshot) and RSS after opening and after the queries;
  * per query, pre-embedded (``Query`` objects) and end to end (``Index.search("text")``,
    MiniLM query embedding included): one level (``level=32``) and routed (default
    router, all 5 levels), p50 / p99;
  * the same with ``MOGRAG_ANN=off`` (exact numpy; few queries at 1M);
  * dense recall@50 of the graphs vs exact per level on these queries;
  * bytes on disk per kind (segments, lexical, ann), build seconds per stage.

Usage::

    PYTHONPATH=src python bench/scale.py --sizes 10000,100000,1000000 \\
        [--work /tmp/mograg-scale] [--out bench/results/scale.json] [--memory-cap-mb 2048]

``--memory-cap-mb``: serve inside a memory cgroup with that cap, page cache dropped first
(``_memcap.py``): whether the server runs within the cap, and at what latency.

Heavy (the 1M build takes minutes): run it under the machine lock, niced.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _output import emit

LEVELS = [32, 64, 128, 256, 512]
WORDS_PER_ATOM = 8
ATOMS_PER_DOC = 64  # 512 tokens: 16 finest chunks, 1 top-level chunk per document
TOPICS = 4096
VOCAB = 30_000
DIM = 384
MAX_QUERY_DF = 0.12
PER_DOC = ATOMS_PER_DOC * WORDS_PER_ATOM // LEVELS[0]  # finest chunks per document
# the builder holds one segment in memory at a time (a 3M index is 3 segments, as an
# index grown by additions would be; the index merges past 8 segments)
SEGMENT_FINEST = 1_000_000


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rss_mb() -> float:
    return memory_mb()["rss"]


def memory_mb() -> dict[str, float]:
    """Resident memory: total, anonymous (the process's own) and file-backed (mapped
    index files, page cache the kernel can drop and re-read)."""
    keys = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file", "VmHWM:": "peak_rss"}
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name = line.split(":")[0] + ":"
            if name in keys:
                out[keys[name]] = round(int(line.split()[1]) / 1024, 1)
    return out


def pct(xs: list[float], cpu: list[float] | None = None) -> dict[str, float]:
    """p50 / p99 in ms of wall times ``xs`` (and of process CPU times ``cpu``: on a shared
    machine the steadier measure of a search's own work)."""
    ms = np.array(xs) * 1000
    out = {"p50_ms": round(float(np.percentile(ms, 50)), 2),
           "p99_ms": round(float(np.percentile(ms, 99)), 2), "n": len(xs)}
    if cpu is not None:
        c = np.array(cpu) * 1000
        out["p50_cpu_ms"] = round(float(np.percentile(c, 50)), 2)
        out["p99_cpu_ms"] = round(float(np.percentile(c, 99)), 2)
    return out


def dir_mb(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return round(total / 2**20, 1)


# ------------------------------------------------------------------------ build
def vocabulary(rng: np.random.Generator) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(4, 9, VOCAB)
    return np.array(["".join(rng.choice(letters, n)) for n in lengths])


def synthetic_segment(n_finest: int, seed: int = 0, first_doc: int = 0) -> Any:
    """A SegmentData of ``n_finest`` level-0 chunks (text, atoms, levels, vectors), its
    documents numbered from ``first_doc``. Every segment draws its words from one
    vocabulary (seed 0's, so segment 0 is what a one-segment index has)."""
    from mograg.store.storage import SegmentData
    from mograg.text.levels import ATOM_DTYPE, build_levels

    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng if seed == 0 else np.random.default_rng(0))
    n_docs = max(1, n_finest // PER_DOC)
    texts, rows = [], []
    zipf = np.minimum(rng.zipf(1.3, n_docs * ATOMS_PER_DOC * WORDS_PER_ATOM), VOCAB) - 1
    words = vocab[rng.permutation(VOCAB)[zipf]].reshape(n_docs, ATOMS_PER_DOC, WORDS_PER_ATOM)
    for d in range(n_docs):
        parts, pos = [], 0
        for a in range(ATOMS_PER_DOC):
            sent = " ".join(words[d, a].tolist()) + ". "
            rows.append((d, pos, pos + len(sent) - 1, WORDS_PER_ATOM))
            parts.append(sent)
            pos += len(sent)
        texts.append("".join(parts))
    atoms = np.array(rows, dtype=ATOM_DTYPE)
    levels = build_levels(atoms, LEVELS)
    centers = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
    doc_topic = rng.integers(0, TOPICS, n_docs)
    chunk_doc = atoms["doc"][levels[0]["first_atom"]]
    finest = centers[doc_topic[chunk_doc]] + 0.8 * rng.standard_normal(
        (len(levels[0]), DIM)).astype(np.float32)
    finest /= np.linalg.norm(finest, axis=1, keepdims=True)
    vectors = [finest]
    for j in range(1, len(LEVELS)):
        sums = np.zeros((len(levels[j]), DIM), np.float32)
        np.add.at(sums, levels[j - 1]["parent"], vectors[j - 1])
        vectors.append(sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12))
    return SegmentData(
        doc_ids=[f"doc-{first_doc + d:07d}" for d in range(n_docs)],
        metadata=[{} for _ in range(n_docs)],
        texts=texts, atoms=atoms, levels=levels, vectors=vectors,
        hashes=[np.zeros((len(lv), 16), np.uint8) for lv in levels],
    )


def finest_chunks(path: Path) -> int:
    """Finest chunks already in the index at ``path``."""
    from mograg.index.core import Index

    return int(Index.open(path).snapshot.n_chunks(0))


def build(path: Path, n_finest: int) -> dict[str, Any]:
    """Write a synthetic index at ``path`` (timed per stage)."""
    from mograg.index.core import Index

    out: dict[str, Any] = {"load_before": load(), "generate_s": 0.0, "commit_s": 0.0}
    fresh = not (path / "manifest.json").exists()
    ix = Index.create(path, levels=LEVELS) if fresh else Index.open(path)
    stages: dict[str, float] = {}
    last: list[Any] = [time.perf_counter(), ""]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if last[1]:
            stages[str(last[1])] = stages.get(str(last[1]), 0.0) + now - float(last[0])
        last[0], last[1] = now, stage

    done = 0 if fresh else ix.snapshot.n_chunks(0)  # an earlier run's segments stay
    for start in range(done, n_finest, SEGMENT_FINEST):
        t = time.perf_counter()
        seg = synthetic_segment(min(SEGMENT_FINEST, n_finest - start),
                                seed=start // SEGMENT_FINEST, first_doc=start // PER_DOC)
        out["generate_s"] += round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        ix.commit_segment(seg, progress)
        progress("", 0, 0)
        out["commit_s"] += round(time.perf_counter() - t, 1)
        del seg
    out["stages_s"] = {k: round(v, 1) for k, v in stages.items()}
    out["chunks_per_level"] = [ix.snapshot.n_chunks(j) for j in range(len(LEVELS))]
    out["segments"] = len(ix.manifest["segments"])
    out["load_after"] = load()
    return out


# ------------------------------------------------------------------------ serve
def queries_for(ix: Any, n: int, seed: int = 1) -> tuple[list[Any], list[str], float]:
    """Pre-embedded queries (a finest chunk's vector plus noise) and their texts.

    A query's words are 6 words of that chunk whose document frequency is at most
    ``MAX_QUERY_DF`` of the finest chunks, as for real questions (medquad-dev: 5.8 terms
    per question after stopwords, each in at most 11% of the finest chunks, their
    postings summing to 18% of the chunks at the median); the synthetic text's most
    frequent words play the stopwords. Also returns the median postings sum / chunks."""
    from mograg.retrieval.rank import make_query
    from mograg.store.lexical import tokenize

    snap = ix.snapshot
    rng = np.random.default_rng(seed)
    postings = snap.lexical[0].parts
    n0 = snap.n_chunks(0)

    def df(term: str) -> int:
        total = 0
        for p in postings:
            i = int(np.searchsorted(p.vocab, term))
            if i < len(p.vocab) and p.vocab[i] == term:
                total += int(p.indptr[i + 1] - p.indptr[i])
        return total

    picks = rng.choice(n0, n, replace=False)
    texts, sums = [], []
    for c in picks.tolist():
        words = []
        for w in snap.chunk_text(0, c).replace(".", " ").split():
            terms = tokenize([w])[0]
            if terms and df(terms[0]) <= MAX_QUERY_DF * n0 and w not in words:
                words.append(w)
            if len(words) == 6:
                break
        texts.append(" ".join(words))
        sums.append(sum(df(t) for t in tokenize([texts[-1]])[0]) / n0)
    vecs = snap.chunk_vectors(0, np.sort(picks))[np.argsort(np.argsort(picks))]
    vecs = vecs + 0.5 * rng.standard_normal(vecs.shape).astype(np.float32) / np.sqrt(DIM)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = [make_query(t, v, 8) for t, v in zip(texts, vecs, strict=True)]
    return queries, texts, round(float(np.median(sums)), 3)


def timed(fn: Any, items: list[Any]) -> dict[str, float]:
    """Wall and CPU percentiles of ``fn`` over ``items`` (after a short warm-up)."""
    for it in items[:3]:
        fn(it)  # warm-up: page in what the first queries touch
    wall, cpu = [], []
    for it in items:
        t, c = time.perf_counter(), time.process_time()
        fn(it)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return pct(wall, cpu)


def serve(path: Path, n_queries: int, n_exact: int) -> dict[str, Any]:
    """Open the index as a server would and time searches (run in a fresh process)."""
    from threadpoolctl import threadpool_limits

    from mograg.index.core import Index

    threadpool_limits(1, user_api="blas")  # as `mograg serve` does (server/app.py)

    out: dict[str, Any] = {"load_before": load(), "rss_start_mb": rss_mb(),
                           "ann": os.environ.get("MOGRAG_ANN", "on")}
    t = time.perf_counter()
    ix = Index.open(path)
    snap = ix.snapshot
    out["open_s"] = round(time.perf_counter() - t, 3)
    out["rss_open_mb"] = rss_mb()
    out["memory_open_mb"] = memory_mb()
    out["uses_ann"] = [snap.uses_ann(j) for j in range(len(LEVELS))]
    queries, texts, out["query_postings_share"] = queries_for(ix, n_queries)
    qs = queries[:n_exact] if os.environ.get("MOGRAG_ANN") == "off" else queries
    ts = texts[: len(qs)]
    out["single_level_preembedded"] = timed(lambda q: ix.search(q, level=LEVELS[0]), qs)
    out["routed_preembedded"] = timed(lambda q: ix.search(q), qs)
    ix.embedder.embed(["warm up the embedder"])
    out["single_level_end_to_end"] = timed(lambda s: ix.search(s, level=LEVELS[0]), ts)
    out["routed_end_to_end"] = timed(lambda s: ix.search(s), ts)
    out["query_embedding"] = timed(lambda s: ix.embedder.embed([s]), ts)
    out["rss_end_mb"] = rss_mb()  # before the recall check, which reads every vector
    out["memory_end_mb"] = memory_mb()
    if snap.ann and os.environ.get("MOGRAG_ANN") != "off":
        out["dense_recall_at_50"] = dense_recall(snap, queries[:n_exact])
    out["load_after"] = load()
    return out


def dense_recall(snap: Any, queries: list[Any]) -> list[float]:
    """Per level: share of the exact top 50 (dense) that the graphs return."""
    out = []
    for j in range(len(LEVELS)):
        hits = 0
        for q in queries:
            exact = np.argpartition(-snap.dense_scores(j, q.vector), 49)[:50]
            found, _ = snap.dense_top(j, q.vector, 50)
            hits += len(set(exact.tolist()) & set(found.tolist()))
        out.append(round(hits / (50 * len(queries)), 4))
    return out


def run_serve(path: Path, n_queries: int, n_exact: int, exact: bool,
              cap_mb: int | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("MOGRAG_ANN", None)
    if exact:
        env["MOGRAG_ANN"] = "off"
    cmd = [sys.executable, __file__, "--serve", str(path), "--queries", str(n_queries),
           "--exact-queries", str(n_exact)]
    cap: dict[str, Any] | None = None
    if cap_mb:
        from _memcap import run_capped

        done, cap = run_capped(cmd, env, cap_mb)
    else:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"], "cap": cap}
    out: dict[str, Any] = json.loads(done.stdout)
    if cap:
        out["memory_cap"] = cap
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mograg-scale"))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact-queries", type=int, default=30)
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out")
    ap.add_argument("--no-exact", action="store_true", help="skip the exact (MOGRAG_ANN=off) run")
    ap.add_argument("--memory-cap-mb", type=int,
                    help="serve in a memory cgroup capped at this many MB, page cache dropped "
                         "first (Linux, root; see _memcap.py)")
    args = ap.parse_args()
    if args.serve:
        print(json.dumps(serve(args.serve, args.queries, args.exact_queries)))
        return 0
    result: dict[str, Any] = {"bench": "scale", "levels": LEVELS, "cpus": os.cpu_count(),
                              "rows": []}
    for n in [int(s) for s in args.sizes.split(",")]:
        path = args.work / f"synthetic-{n}"
        row: dict[str, Any] = {"finest_chunks": n}
        if not (path / "manifest.json").exists() or finest_chunks(path) < n:
            row["build"] = build(path, n)
        row["bytes_mb"] = {k: dir_mb(path / k) for k in ("segments", "lexical", "ann")}
        row["approximate"] = run_serve(path, args.queries, args.exact_queries, exact=False,
                                       cap_mb=args.memory_cap_mb)
        if not args.no_exact:
            row["exact"] = run_serve(path, args.queries, args.exact_queries, exact=True)
        result["rows"].append(row)
        print(json.dumps(row), file=sys.stderr)
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
