"""The index as the server sees it: a current read handle, swapped in after each write.

Requests read from the current :class:`~mograg.index.core.Index` handle, whose snapshot is
immutable. Writes run one at a time (a lock here, the index's file lock across processes);
after a write commits, a fresh handle is opened, warmed up and swapped in with a single
assignment. Requests already running keep the handle they started with, so every request
sees exactly one committed generation. A generation committed by another process
(``mograg index``) is picked up within a second.
"""

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mograg.errors import MogragError
from mograg.graph.titles import title_matcher
from mograg.graph.walk import graph_radii, load_graph
from mograg.index.core import Index, WriteReport
from mograg.server.endpoint import GENERATION_HEADER
from mograg.store.storage import read_manifest
from mograg.types import Document

log = logging.getLogger("mograg.server")

RELOAD_INTERVAL = 1.0


@dataclass
class Handle:
    """One committed generation: a read-only index handle and its cached info."""

    index: Index
    generation: int
    info: dict[str, Any]


class IndexService:
    """The index as the server sees it: a current read handle, swapped after each write.

    Reads call :meth:`handle` and use that object for the whole request; nothing ever
    mutates a handle once it is published. Writes are serialised by ``_write_lock``
    (and by the index's own file lock against other processes).
    """

    def __init__(
        self, path: str | Path, reload_interval: float = RELOAD_INTERVAL,
        search_slots: int | None = None,
    ) -> None:
        self.root = Path(path)
        self.reload_interval = reload_interval
        self._write_lock = threading.Lock()
        # searches are CPU-bound (embedding, matrix products, BM25): running more at once
        # than there are cores only adds contention, so extra ones queue here
        self.search_slots = threading.BoundedSemaphore(search_slots or os.cpu_count() or 2)
        first = Index.open(self.root)
        self._embedder = first.embedder  # loaded once, shared by every handle
        self._current = self._publishable(first)
        self._checked = time.monotonic()

    # ------------------------------------------------------------------ reads
    @contextlib.contextmanager
    def searching(self) -> Iterator[Handle]:
        """The current generation, while holding one of the CPU slots for a search."""
        with self.search_slots:
            yield self.handle()

    def handle(self) -> Handle:
        """The current generation (picks up commits by other processes, at most once a second)."""
        now = time.monotonic()
        if now - self._checked >= self.reload_interval:
            self._checked = now
            self._reload_if_changed()
        return self._current

    def _reload_if_changed(self) -> None:
        try:
            generation = read_manifest(self.root).get("generation")
        except MogragError as exc:
            log.warning("cannot read the manifest (%s); serving generation %s",
                        exc, self._current.generation)
            return
        if generation == self._current.generation:
            return
        if not self._write_lock.acquire(blocking=False):
            return  # a write is in progress here; it swaps in a fresh handle itself
        try:
            self._current = self._open()
        except MogragError as exc:  # a writer elsewhere raced us; try again next time
            log.warning("cannot open generation %s yet (%s)", generation, exc)
        finally:
            self._write_lock.release()

    def _open(self) -> Handle:
        ix = Index(self.root, read_manifest(self.root), embedder=self._embedder)
        return self._publishable(ix)

    def _publishable(self, ix: Index) -> Handle:
        """Load everything a read may touch now, while the generation's files surely exist.

        The writer garbage-collects superseded files; memory maps opened here keep
        them readable for requests still holding this handle after it is replaced.
        """
        snap = ix.snapshot
        for seg in snap.segments:
            if seg.doc_ids:
                seg.text(0)
        if graph_radii(ix.manifest):
            title_matcher(snap, load_graph(snap))
        with contextlib.suppress(MogragError, ValueError, IndexError):
            ix.search("warm up", budget=16)
        info = public_info(ix)
        return Handle(index=ix, generation=int(ix.manifest.get("generation", 0)), info=info)

    # ------------------------------------------------------------------ writes
    def add(self, documents: Sequence[Document]) -> tuple[WriteReport, int]:
        """Add (or replace) documents; return the report and the new generation."""
        with self._write_lock:
            writer = Index(self.root, read_manifest(self.root), embedder=self._embedder)
            report = writer.add(documents)
            self._current = self._open()
            return report, self._current.generation

    def delete(self, ids: Sequence[str]) -> tuple[WriteReport, int]:
        """Delete documents; return the report and the (possibly unchanged) generation."""
        with self._write_lock:
            writer = Index(self.root, read_manifest(self.root), embedder=self._embedder)
            report = writer.delete(ids)
            if report.deleted:
                self._current = self._open()
            return report, self._current.generation


def public_info(ix: Index) -> dict[str, Any]:
    """``Index.info()`` without the server's filesystem path (retried: files may vanish)."""
    for _ in range(3):
        try:
            data = ix.info()
            break
        except OSError:  # a file was removed by a writer while sizes were summed
            time.sleep(0.01)
    else:
        data = {"levels": ix.levels, "generation": ix.manifest.get("generation")}
    data.pop("path", None)
    data["name"] = ix.root.name
    return data


def generation_header(h: Handle) -> dict[str, str]:
    """The response header naming the generation a request was served from."""
    return {GENERATION_HEADER: str(h.generation)}
