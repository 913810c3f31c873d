"""Batched, parallel, resumable ingestion into an index (embedded or Milvus store).

Pipeline::

    documents (streamed) --skip already committed (content hash)--> batches of B docs
      --> worker processes (spawn; split, levels, embed)  [at most `max_pending` in flight]
      --> main process: stage the batch in Milvus (if the index has a store)
      --> every `commit_docs` documents / `commit_seconds`: one commit (segment + manifest)

Back-pressure: the reader stops pulling documents while `max_pending` batches are being
embedded, so memory stays bounded whatever the corpus size. Results are consumed in
submission order, so commits are deterministic.

Resumable: a document is committed when the manifest naming its segment is swapped in.
A re-run skips every document whose ``(id, text)`` hash is already committed; documents
of a batch that crashed before its commit are simply processed again. Milvus rows are
keyed by content (:mod:`mograg.store.content_keys`), so re-sending them is an idempotent
upsert: never a duplicate.

CLI (used by tests and for big corpora; the creation options of ``mograg index``)::

    python -m mograg.index.ingest INDEX SOURCES... [--workers N] [--batch-docs B]
        [--commit-docs C] [--limit N] [--levels 32,64,...] [--embedder SPEC] [--float16]
        [--level-vectors pool|embed] [--graph] [--graph-knn K] [--graph-radius R]
        [--store milvus-lite:PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mograg.embed.embedders import OnnxMiniLM, make_embedder
from mograg.errors import MogragError
from mograg.index.core import Index
from mograg.index.migrate import enable_graph
from mograg.index.segments import SegmentBuilder, WriteReport, no_progress
from mograg.index.settings import IndexSettings, check_existing
from mograg.store.backend import STAGES_WRITES
from mograg.store.content_keys import doc_hash, key_map
from mograg.store.factory import open_backend
from mograg.store.manifest import Manifest
from mograg.store.storage import MANIFEST, SegmentData, concat_segments
from mograg.text.documents import LoadProblem, iter_documents
from mograg.types import Document

Progress = Callable[[str, int, int], None]



@dataclass
class IngestReport:
    """What an ingestion run did."""

    seen: int = 0
    skipped: int = 0  # already committed with the same text
    added: int = 0
    replaced: int = 0
    chunks: int = 0
    embedded: int = 0
    batches: int = 0
    commits: int = 0
    staged_rows: int = 0
    workers: int = 0
    seconds: float = 0.0

    @property
    def docs_per_second(self) -> float:
        """Documents ingested per second (skipped ones excluded)."""
        return (self.added + self.replaced) / self.seconds if self.seconds else 0.0

    @property
    def chunks_per_second(self) -> float:
        """Chunks (all levels) ingested per second."""
        return self.chunks / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        d["docs_per_second"] = round(self.docs_per_second, 2)
        d["chunks_per_second"] = round(self.chunks_per_second, 2)
        return d


# ----------------------------------------------------------------------------- workers

_WORKER: SegmentBuilder | None = None


def _worker_builder(manifest: Manifest, threads: int | None) -> SegmentBuilder:
    """A segment builder that reuses no vectors (workers do not read the index)."""
    spec = manifest["embedder"]["spec"]
    emb = make_embedder(None if spec == "minilm" else spec)
    if isinstance(emb, OnnxMiniLM) and threads:
        emb.threads = threads
    return SegmentBuilder(manifest, emb)


def _init_worker(manifest: Manifest, threads: int | None) -> None:
    global _WORKER
    os.environ.setdefault("OMP_NUM_THREADS", str(threads or 1))
    _WORKER = _worker_builder(manifest, threads)


def _build_batch(rows: list[tuple[str, str, dict[str, Any]]]) -> tuple[Any, dict[str, int]]:
    """Worker task: split, chunk and embed one batch; returns (SegmentData, counts)."""
    assert _WORKER is not None, "worker not initialised"
    report = WriteReport()
    docs = [Document(i, t, m) for i, t, m in rows]
    seg = _WORKER.build(docs, report, no_progress)
    return seg, {"chunks": report.chunks, "embedded": report.embedded}


class _Inline(Executor):
    """Run tasks in the calling process (workers=0: debugging, tiny inputs)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        f: Future[Any] = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # pragma: no cover - surfaced by result()
            f.set_exception(exc)
        return f


# ----------------------------------------------------------------------------- driver


def committed_hashes(index: Index) -> dict[str, int]:
    """``doc_id -> content hash`` of every committed document."""
    snap = index.snapshot
    return key_map(snap).committed_docs(snap.doc_ids)


def _commit(index: Index, parts: list[SegmentData], progress: Progress) -> tuple[int, int]:
    """Commit accumulated segments as one generation; returns (added, replaced)."""
    seg = parts[0] if len(parts) == 1 else concat_segments(parts)
    replaced = index.commit_segment(seg, progress)
    return len(set(seg.doc_ids)) - replaced, replaced


def ingest(
    index: Index,
    documents: Iterable[Document],
    workers: int | None = None,
    batch_docs: int = 64,
    commit_docs: int = 2000,
    commit_seconds: float = 120.0,
    max_pending: int | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Add ``documents`` to ``index`` in parallel, resumably (see module docstring).

    Args:
        index: an open :class:`mograg.index.core.Index`.
        documents: any iterable; it is consumed lazily.
        workers: embedding processes (default ``os.cpu_count()``; 0 = in this process).
        batch_docs: documents per worker task.
        commit_docs: documents per commit (one segment + manifest swap each).
        commit_seconds: also commit when this long has passed since the last commit.
        max_pending: batches in flight before reading stops (default ``2 * workers``).
        progress: ``(stage, done, total)`` callback; total is 0 (unknown) while streaming.
    """
    progress = progress or no_progress
    t0 = time.perf_counter()
    n_workers = (os.cpu_count() or 1) if workers is None else max(0, int(workers))
    pending_cap = max_pending or max(2, 2 * max(1, n_workers))
    report = IngestReport(workers=n_workers)
    manifest = index.manifest
    stages = STAGES_WRITES in open_backend(manifest).capabilities
    done = committed_hashes(index)
    threads = max(1, (os.cpu_count() or 1) // max(1, n_workers))
    if n_workers == 0:
        global _WORKER
        _WORKER = _worker_builder(manifest, None)
        pool: Executor = _Inline()
    else:
        pool = ProcessPoolExecutor(
            max_workers=n_workers, mp_context=mp.get_context("spawn"),
            initializer=_init_worker, initargs=(manifest, threads),
        )
    pending: deque[tuple[Future[Any], set[str]]] = deque()
    group: list[SegmentData] = []
    group_ids: set[str] = set()
    group_docs = 0
    last_commit = time.monotonic()

    def flush_group() -> None:
        nonlocal group, group_ids, group_docs, last_commit
        if group:
            added, replaced = _commit(index, group, progress)
            report.added += added
            report.replaced += replaced
            report.commits += 1
            progress("commit", report.added + report.replaced, 0)
        group, group_ids, group_docs = [], set(), 0
        last_commit = time.monotonic()

    def take_oldest() -> None:
        nonlocal group_docs
        fut, ids = pending.popleft()
        seg, counts = fut.result()
        if ids & group_ids:  # same id twice in the stream: commit the earlier one first
            flush_group()
        if stages:
            report.staged_rows += index.stage_segment(seg)
        group.append(seg)
        group_ids.update(ids)
        group_docs += seg.n_docs
        report.chunks += counts["chunks"]
        report.embedded += counts["embedded"]
        report.batches += 1
        progress("embed", report.batches, 0)
        if group_docs >= commit_docs or time.monotonic() - last_commit >= commit_seconds:
            flush_group()

    def batches() -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
        batch: list[tuple[str, str, dict[str, Any]]] = []
        ids: set[str] = set()
        for d in documents:
            report.seen += 1
            if done.get(d.id) == doc_hash(d.id, d.text):
                report.skipped += 1
                continue
            if d.id in ids:  # keep the last one within a batch
                batch = [r for r in batch if r[0] != d.id]
            batch.append((d.id, d.text, dict(d.metadata)))
            ids.add(d.id)
            if len(batch) >= batch_docs:
                yield batch
                batch, ids = [], set()
        if batch:
            yield batch

    try:
        for rows in batches():
            while len(pending) >= pending_cap:
                take_oldest()
            pending.append((pool.submit(_build_batch, rows), {r[0] for r in rows}))
        while pending:
            take_oldest()
        flush_group()
    finally:
        for fut, _ in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    report.seconds = time.perf_counter() - t0
    return report


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m mograg.index.ingest``: create or extend an index from files, in parallel.

    Takes the creation options of ``mograg index`` (the same :class:`IndexSettings`).
    """
    ap = argparse.ArgumentParser(prog="python -m mograg.index.ingest", description=main.__doc__)
    ap.add_argument("index")
    ap.add_argument("sources", nargs="+")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--batch-docs", type=int, default=64)
    ap.add_argument("--commit-docs", type=int, default=2000)
    ap.add_argument("--limit", type=int, default=None, help="ingest at most this many docs")
    ap.add_argument("--levels", default=None)
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--float16", action="store_true", help="store vectors as float16")
    ap.add_argument("--level-vectors", choices=("embed", "pool"), default=None)
    ap.add_argument("--graph", action="store_true", help="also build the MoGG graph")
    ap.add_argument("--graph-knn", type=int, default=None)
    ap.add_argument("--graph-radius", type=int, default=None)
    ap.add_argument("--store", default=None, help="local, milvus-lite:PATH or milvus://HOST:PORT")
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except MogragError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    root = Path(args.index)
    settings = IndexSettings.from_options(
        levels=args.levels, embedder=args.embedder, float16=args.float16,
        level_vectors=args.level_vectors, graph=args.graph, graph_knn=args.graph_knn,
        graph_radius=args.graph_radius, store=args.store,
    )
    if (root / MANIFEST).exists():
        ix = Index.open(root)
        check_existing(root, ix.manifest, args.levels, args.embedder, args.float16,
                       args.level_vectors, args.store)
        if settings.graph is not None and ix.manifest.get("graph") != settings.graph.to_dict():
            enable_graph(ix, settings.graph)
    else:
        ix = Index.create(root, settings=settings)
    problems: list[LoadProblem] = []
    docs: Iterable[Document] = iter_documents(args.sources, problems)
    if args.limit is not None:
        docs = itertools.islice(docs, args.limit)
    rep = ingest(ix, docs, workers=args.workers, batch_docs=args.batch_docs,
                 commit_docs=args.commit_docs)
    print(json.dumps(rep.to_dict()))
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
