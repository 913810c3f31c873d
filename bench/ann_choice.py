"""Choose the approximate-nearest-neighbour library by measurement (issue 15).

Compares usearch, faiss-cpu and hnswlib (HNSW graphs, inner product on L2-normalised
vectors) on the same vectors, one query at a time, top 50:

  * build seconds (2 threads), query p50 / p99 (1 thread), recall@50 vs exact numpy;
  * index bytes on disk, RSS growth when the saved index is opened, open seconds;
  * vector storage: float32 everywhere, plus float16 / int8 where the library searches
    them natively (usearch f16/i8, faiss scalar-quantised fp16/int8).

Datasets: ``real`` = the finest level of a cached medquad-dev index (93k MiniLM vectors)
with the dev questions as queries; ``synthetic`` = 100k random unit vectors (no cluster
structure: the hardest case for a graph index, so its recall is a lower bound).

Usage::

    PYTHONPATH=src python bench/ann_choice.py --index DIR [--out bench/results/ann_choice.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _output import emit

TOP = 50
M = 16  # graph degree, the same for every library
EF_CONSTRUCTION = 128
EF_SEARCH = 128


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def unit(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    out = np.empty((len(queries), TOP), np.int64)
    for i in range(0, len(queries), 64):
        s = queries[i : i + 64] @ data.T
        part = np.argpartition(-s, TOP - 1, axis=1)[:, :TOP]
        out[i : i + 64] = part
    return out


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / (TOP * len(truth))


# --- libraries: each returns (build, save, open, search) closures -----------------------


def usearch_lib(dtype: str) -> dict[str, Callable[..., Any]]:
    from usearch.index import Index

    def build(data: np.ndarray) -> Any:
        ix = Index(ndim=data.shape[1], metric="ip", dtype=dtype, connectivity=M,
                   expansion_add=EF_CONSTRUCTION, expansion_search=EF_SEARCH)
        ix.add(np.arange(len(data), dtype=np.uint64), data, threads=2)
        return ix

    def save(ix: Any, path: Path) -> None:
        ix.save(str(path))

    def open_(path: Path, dim: int) -> Any:
        ix = Index(ndim=dim, metric="ip", dtype=dtype, connectivity=M,
                   expansion_search=EF_SEARCH)
        ix.view(str(path))
        return ix

    def search(ix: Any, q: np.ndarray) -> np.ndarray:
        return np.asarray(ix.search(q, TOP, threads=1).keys, np.int64)

    return {"build": build, "save": save, "open": open_, "search": search}


def faiss_lib(kind: str) -> dict[str, Callable[..., Any]]:
    import faiss

    faiss.omp_set_num_threads(2)

    def build(data: np.ndarray) -> Any:
        d = data.shape[1]
        ix: Any
        if kind == "f32":
            ix = faiss.IndexHNSWFlat(d, M, faiss.METRIC_INNER_PRODUCT)
        else:
            qt = {"f16": faiss.ScalarQuantizer.QT_fp16, "i8": faiss.ScalarQuantizer.QT_8bit}[kind]
            ix = faiss.IndexHNSWSQ(d, qt, M, faiss.METRIC_INNER_PRODUCT)  # type: ignore[arg-type]
            ix.train(data)
        ix.hnsw.efConstruction = EF_CONSTRUCTION
        ix.add(data)
        return ix

    def save(ix: Any, path: Path) -> None:
        faiss.write_index(ix, str(path))

    def open_(path: Path, dim: int) -> Any:
        try:
            ix = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            ix = faiss.read_index(str(path))
        return ix

    def search(ix: Any, q: np.ndarray) -> np.ndarray:
        faiss.omp_set_num_threads(1)
        ix.hnsw.efSearch = EF_SEARCH
        _, ids = ix.search(q[None, :], TOP)
        return ids[0].astype(np.int64)

    return {"build": build, "save": save, "open": open_, "search": search}


def hnswlib_lib() -> dict[str, Callable[..., Any]]:
    import hnswlib

    def build(data: np.ndarray) -> Any:
        ix = hnswlib.Index(space="ip", dim=data.shape[1])
        ix.init_index(max_elements=len(data), ef_construction=EF_CONSTRUCTION, M=M)
        ix.set_num_threads(2)
        ix.add_items(data, np.arange(len(data)))
        return ix

    def save(ix: Any, path: Path) -> None:
        ix.save_index(str(path))

    def open_(path: Path, dim: int) -> Any:
        ix = hnswlib.Index(space="ip", dim=dim)
        ix.load_index(str(path))
        return ix

    def search(ix: Any, q: np.ndarray) -> np.ndarray:
        ix.set_ef(EF_SEARCH)
        ix.set_num_threads(1)
        labels, _ = ix.knn_query(q, k=TOP)
        return labels[0].astype(np.int64)

    return {"build": build, "save": save, "open": open_, "search": search}


LIBS: dict[str, Callable[[], dict[str, Callable[..., Any]]]] = {
    "usearch-f32": lambda: usearch_lib("f32"),
    "usearch-f16": lambda: usearch_lib("f16"),
    "usearch-i8": lambda: usearch_lib("i8"),
    "faiss-f32": lambda: faiss_lib("f32"),
    "faiss-sq-f16": lambda: faiss_lib("f16"),
    "faiss-sq-i8": lambda: faiss_lib("i8"),
    "hnswlib-f32": hnswlib_lib,
}


def measure(name: str, data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    lib = LIBS[name]()
    row: dict[str, Any] = {"library": name, "load_before": load()}
    t = time.perf_counter()
    ix = lib["build"](data)
    row["build_s"] = round(time.perf_counter() - t, 2)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        path = Path(tmp) / "ann.index"
        lib["save"](ix, path)
        row["index_mb"] = round(path.stat().st_size / 2**20, 1)
        del ix
        rss0 = rss_mb()
        t = time.perf_counter()
        ix = lib["open"](path, data.shape[1])
        row["open_s"] = round(time.perf_counter() - t, 3)
        row["open_rss_mb"] = round(rss_mb() - rss0, 1)
        for q in queries[:20]:  # warm-up
            lib["search"](ix, q)
        times, found = [], []
        for q in queries:
            t = time.perf_counter()
            found.append(lib["search"](ix, q))
            times.append(time.perf_counter() - t)
        row["query_rss_mb"] = round(rss_mb() - rss0, 1)
        del ix
    ms = np.array(times) * 1000
    row["p50_ms"] = round(float(np.percentile(ms, 50)), 3)
    row["p99_ms"] = round(float(np.percentile(ms, 99)), 3)
    row["recall_at_50"] = round(recall(found, truth), 4)
    row["load_after"] = load()
    return row


def exact_row(data: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    times = []
    for q in queries[:200]:
        t = time.perf_counter()
        s = data @ q
        np.argpartition(-s, TOP - 1)[:TOP]
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"library": "numpy-exact-f32", "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "recall_at_50": 1.0,
            "index_mb": round(data.nbytes / 2**20, 1), "load": load()}


def real_data(index: Path, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    from mograg.embed.embedders import make_embedder

    manifest = json.loads((index / "manifest.json").read_text())
    mats = [np.load(index / "segments" / s / "vectors-0.npy") for s in manifest["segments"]]
    data = np.ascontiguousarray(np.concatenate(mats), dtype=np.float32)
    qfile = Path("/work/shared/evalsets/medquad-dev/questions.jsonl.gz")
    with gzip.open(qfile, "rt") as f:
        questions = [json.loads(line)["question"] for line in f][:n_queries]
    queries = make_embedder(manifest["embedder"]["spec"]).embed(questions).astype(np.float32)
    return data, queries


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, help="a cached medquad-dev index (real vectors)")
    ap.add_argument("--synthetic", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--out")
    args = ap.parse_args()
    result: dict[str, Any] = {"bench": "ann_choice", "top": TOP, "M": M,
                              "ef_construction": EF_CONSTRUCTION, "ef_search": EF_SEARCH,
                              "cpus": os.cpu_count(), "datasets": {}}
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if args.index:
        sets["real-medquad-dev-level0"] = real_data(args.index, args.queries)
    if args.synthetic:
        sets[f"synthetic-{args.synthetic}"] = (unit(args.synthetic, 384, 0),
                                                 unit(args.queries, 384, 1))
    for label, (data, queries) in sets.items():
        truth = exact_top(data, queries)
        rows = [exact_row(data, queries)]
        for name in args.libs.split(","):
            rows.append(measure(name, data, queries, truth))
            print(json.dumps(rows[-1]), file=sys.stderr)
        result["datasets"][label] = {"n": len(data), "queries": len(queries), "rows": rows}
    result["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return emit(result, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
