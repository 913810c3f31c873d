"""Scale measurements behind docs/scaling.md.

Measures, on synthetic L2-normalised 384-d vectors:
  * exact numpy search latency (float32 and float16 matrices, the embedded store's path)
    at 10k / 100k / 1M rows;
  * Milvus Lite: insert rate and dense (FLAT) / BM25 search latency at 10k / 100k rows
    (1M only with --milvus-max 1000000: Milvus Lite 3 is pure Python, see the output);
  * bytes per chunk of a real mograg index (local store) and of its Milvus Lite copy;
  * embeddings/s of mograg.embed.embedders.OnnxMiniLM on short and long texts;
  * ingestion throughput (docs/s, chunks/s) into both backends on a corpus sample;
  * (section ``parity``) eval recall of the same index on both backends.

Usage::

    PYTHONPATH=src python bench/milvus_scale.py [--quick] [--out bench/results/milvus_scale.json]
    PYTHONPATH=src python bench/milvus_scale.py --sections parity   # squad-dev recall parity

Every section records the load average before and after it (the machine is shared).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
RNG = np.random.default_rng(0)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def pct(xs: list[float]) -> dict[str, float]:
    a = np.array(xs) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3),
            "mean_ms": round(float(a.mean()), 3)}


def unit(n: int, dtype: Any = np.float32) -> np.ndarray:
    out = np.empty((n, DIM), dtype=dtype)
    step = 100_000
    for lo in range(0, n, step):
        x = RNG.standard_normal((min(step, n - lo), DIM)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[lo : lo + len(x)] = x
    return out


def top(scores: np.ndarray, k: int) -> np.ndarray:
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part])]


# --------------------------------------------------------------------------- numpy


def bench_numpy(sizes: list[int], n_queries: int) -> list[dict[str, Any]]:
    rows = []
    queries = unit(n_queries)
    for n in sizes:
        base = unit(n)
        for dtype in ("float32", "float16"):
            m = base if dtype == "float32" else base.astype(np.float16)
            times = []
            before = load()
            for q in queries:
                t = time.perf_counter()
                s = np.asarray(m @ q.astype(m.dtype), dtype=np.float32)
                top(s, 50)
                times.append(time.perf_counter() - t)
            rows.append({"engine": "numpy-exact", "dtype": dtype, "n": n,
                         "bytes_per_vector": int(m.itemsize * DIM), **pct(times),
                         "load_before": before, "load_after": load()})
            print(json.dumps(rows[-1]), flush=True)
            del m
        del base
    return rows


# --------------------------------------------------------------------------- milvus lite

VOCAB = [f"w{i}" for i in range(20_000)]
ZIPF = 1.0 / np.arange(1, len(VOCAB) + 1)
ZIPF /= ZIPF.sum()


def fake_terms(n: int, length: int = 24) -> list[str]:
    idx = RNG.choice(len(VOCAB), size=(n, length), p=ZIPF)
    return [" ".join(VOCAB[i] for i in row) for row in idx]


def bench_milvus(sizes: list[int], n_queries: int, workdir: Path) -> list[dict[str, Any]]:
    from mograg.store.milvus import MilvusStore, close_clients

    rows = []
    queries = unit(n_queries)
    qterms = fake_terms(n_queries, 4)
    for n in sizes:
        for itype in ("FLAT", "HNSW"):
            db = workdir / f"bench-{n}-{itype}.db"
            cfg = {"kind": "milvus-lite", "uri": str(db), "index_type": itype,
                   "prefix": "bench"}
            st = MilvusStore(cfg, DIM, 1)
            st.create()
            before = load()
            t = time.perf_counter()
            step = 10_000
            for lo in range(0, n, step):
                k = min(step, n - lo)
                vec = unit(k)
                keys = np.arange(lo, lo + k, dtype=np.int64)
                st.upsert(0, keys, ["d"] * k, keys, keys + 1, fake_terms(k), vec)
            st.flush()
            ins = time.perf_counter() - t
            # first search builds/loads the index: time it separately
            t = time.perf_counter()
            st.dense_top(0, queries[0], 50)
            first = time.perf_counter() - t
            dense_t, bm25_t = [], []
            for q, qt in zip(queries, qterms, strict=True):
                t = time.perf_counter()
                st.dense_top(0, q, 50)
                dense_t.append(time.perf_counter() - t)
                t = time.perf_counter()
                st.bm25_top(0, qt, 50)
                bm25_t.append(time.perf_counter() - t)
            size = sum(p.stat().st_size for p in db.rglob("*") if p.is_file())
            row = {"engine": "milvus-lite", "index": itype, "n": n,
                   "insert_rows_per_s": round(n / ins, 1), "insert_s": round(ins, 1),
                   "first_search_s": round(first, 2), "dense": pct(dense_t),
                   "bm25": pct(bm25_t), "db_bytes_per_row": round(size / n, 1),
                   "load_before": before, "load_after": load()}
            rows.append(row)
            print(json.dumps(row), flush=True)
            close_clients()
            shutil.rmtree(db, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------- embeddings


def bench_embed(texts_short: list[str], texts_long: list[str]) -> dict[str, Any]:
    from mograg.embed.embedders import OnnxMiniLM

    emb = OnnxMiniLM()
    emb.embed(["warm up"])
    out: dict[str, Any] = {"load_before": load()}
    for name, texts in (("short", texts_short), ("long", texts_long)):
        t = time.perf_counter()
        emb.embed(texts)
        dt = time.perf_counter() - t
        out[name] = {"texts": len(texts), "per_s": round(len(texts) / dt, 1),
                     "avg_chars": round(float(np.mean([len(x) for x in texts])), 1)}
    out["load_after"] = load()
    print(json.dumps({"embed": out}), flush=True)
    return out


# --------------------------------------------------------------------------- ingestion


def corpus_sample(path: Path, n_docs: int) -> list[Any]:
    from mograg.types import Document

    docs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            docs.append(Document(str(r.get("id")), r["text"], {}))
            if len(docs) >= n_docs:
                break
    return docs


def bench_ingest(docs: list[Any], workdir: Path, workers: int) -> list[dict[str, Any]]:
    from mograg.index.core import Index
    from mograg.index.ingest import ingest
    from mograg.store.milvus import close_clients, store_of

    rows = []
    for store in (None, f"milvus-lite:{workdir / 'ingest.db'}"):
        root = workdir / f"ix-{'milvus' if store else 'local'}"
        ix = Index.create(root, store=store)
        before = load()
        rep = ingest(ix, docs, workers=workers, batch_docs=4, commit_docs=10_000)
        local_bytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        chunks = sum(ix.snapshot.n_chunks(j) for j in range(len(ix.levels)))
        row: dict[str, Any] = {
            "backend": "milvus-lite" if store else "local", "workers": workers,
            "docs": len(docs), "chunks": chunks, "seconds": round(rep.seconds, 1),
            "docs_per_s": round(rep.docs_per_second, 2),
            "chunks_per_s": round(rep.chunks_per_second, 1),
            "local_bytes_per_chunk": round(local_bytes / chunks, 1),
            "corpus_bytes": int(sum(len(d.text.encode()) for d in docs)),
            "load_before": before, "load_after": load(),
        }
        if store:
            db = workdir / "ingest.db"
            row["milvus_bytes_per_chunk"] = round(
                sum(p.stat().st_size for p in db.rglob("*") if p.is_file()) / chunks, 1)
            row["milvus_rows"] = sum(store_of(ix.manifest).count(j)
                                     for j in range(len(ix.levels)))
        rows.append(row)
        print(json.dumps(row), flush=True)
    close_clients()
    return rows


def bench_parity(docs_path: str, questions_path: str, limit: int, workdir: Path,
                 modes: list[str]) -> dict[str, Any]:
    """Recall of the same index served by the embedded store and by Milvus Lite.

    The Milvus copy is made with ``attach_store`` (same vectors, nothing re-embedded), so any
    difference comes from the search backend alone (the index picks its backend from the
    manifest).
    """
    import mograg.eval.commands as cmd
    import mograg.eval.evaluate as ev
    from mograg.eval.questions import load_questions
    from mograg.index.migrate import attach_store
    from mograg.store.milvus import close_clients

    local = cmd.index_docs_cached(docs_path)
    dst = workdir / "parity-ix"
    shutil.copytree(local.root, dst)
    t = time.perf_counter()
    remote = attach_store(dst, f"milvus-lite:{workdir / 'parity.db'}")
    out: dict[str, Any] = {"attach_s": round(time.perf_counter() - t, 1)}
    qs, _ = load_questions(questions_path, cmd.doc_lengths(local))
    qs = qs[:limit]
    for name, ix in (("local", local), ("milvus-lite", remote)):
        for mode in modes:
            before = load()
            t = time.perf_counter()
            res = ev.evaluate(ix, qs, (256,), mode, strategies=("argmax",)).results[0]
            row = {k: round(v["recall"], 4) for k, v in res["systems"].items()
                   if k.startswith(("level:", "router:", "best", "oracle"))}
            row.update(questions=len(qs), seconds=round(time.perf_counter() - t, 1),
                       load_before=before, load_after=load())
            out[f"{name}/{mode}"] = row
            print(json.dumps({f"{name}/{mode}": row}), flush=True)
    close_clients()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10k/100k only, fewer queries")
    ap.add_argument("--sections", default="numpy,embed,ingest,milvus")
    ap.add_argument("--numpy-sizes", default="10000,100000,1000000")
    ap.add_argument("--milvus-sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--ingest-docs", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--corpus", default="../shared/evalsets/squad-dev/docs.jsonl.gz")
    ap.add_argument("--questions", default="../shared/evalsets/squad-dev/questions.jsonl.gz")
    ap.add_argument("--parity-limit", type=int, default=150)
    ap.add_argument("--out", default="bench/results/milvus_scale.json")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_start": load()}}
    work = Path(tempfile.mkdtemp(prefix="mograg-scale-"))
    try:
        if "numpy" in sections:
            sizes = [int(s) for s in args.numpy_sizes.split(",")]
            if args.quick:
                sizes = [s for s in sizes if s <= 100_000]
            out["numpy"] = bench_numpy(sizes, args.queries)
        docs = corpus_sample(Path(args.corpus), args.ingest_docs)
        if "embed" in sections:
            from mograg.text.segment import split_sentences

            sents = [d.text[s:e] for d in docs[:2] for s, e in split_sentences(d.text, 64)]
            longs = [d.text[i : i + 1000] for d in docs for i in range(0, 8000, 1000)]
            out["embed"] = bench_embed(sents[:256], longs[:64])
        if "ingest" in sections:
            out["ingest"] = bench_ingest(docs, work, args.workers)
        if "milvus" in sections:
            sizes = [int(s) for s in args.milvus_sizes.split(",")]
            out["milvus"] = bench_milvus(sizes, max(10, args.queries // 2), work)
        if "parity" in sections:  # not in the default set: indexes the whole corpus once
            out["parity"] = bench_parity(args.corpus, args.questions, args.parity_limit, work,
                                         ["hybrid", "dense", "bm25"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["machine"]["load_end"] = load()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
