"""Knowledge sources: which collection (textbook, papers, encyclopaedia...) a document is from.

A document's source is its metadata ``collection`` (``mograg index --source NAME`` sets
it). Metadata ``source`` is not one: the loader fills it with each file's path, so every
file would be a source of its own. An index has several sources when at least two
documents name different collections; models tuned on such an index (``mograg tune``)
weight granularities per source, and every other index behaves exactly as before.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mograg.errors import MogragError

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot
    from mograg.types import Document

SOURCE_KEY = "collection"
MAX_SOURCE_CHARS = 200
SHARE_TOP = 10  # a query's sources: shares of its finest level's top hits


@dataclass(frozen=True)
class Sources:
    """The sources of an index's documents: ``names`` (sorted) and each document's row in
    it (``-1``: no source)."""

    names: tuple[str, ...]
    of_doc: np.ndarray

    @property
    def several(self) -> bool:
        """True when documents come from at least two named sources."""
        return len(self.names) >= 2

    def counts(self) -> dict[str, int]:
        """Documents per source (unnamed ones under ``""`` when there are any)."""
        n = np.bincount(self.of_doc + 1, minlength=len(self.names) + 1)
        out = {name: int(n[i + 1]) for i, name in enumerate(self.names)}
        if n[0] and self.names:
            out[""] = int(n[0])
        return out

    def rows_for(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        """Each document's row in ``names`` (a model's sources), ``-1`` where unknown."""
        pos = {n: i for i, n in enumerate(names)}
        lookup = np.array([pos.get(n, -1) for n in self.names] + [-1], np.int64)
        return lookup[self.of_doc]  # of_doc == -1 reads the trailing -1


def source_of(metadata: dict[str, object]) -> str | None:
    """The source named by one document's metadata (None: none)."""
    v = metadata.get(SOURCE_KEY)
    if v is None or isinstance(v, (dict, list)):
        return None
    s = str(v).strip()
    return s or None


def check_source_name(name: str) -> str:
    """``--source NAME`` stripped, or one line saying what is wrong with it."""
    s = name.strip()
    if not s or len(s) > MAX_SOURCE_CHARS or not s.isprintable():
        raise MogragError(f"invalid --source {name!r}: give a non-empty, printable name of at "
                          f"most {MAX_SOURCE_CHARS} characters, e.g. --source papers")
    return s


def with_source(docs: list[Document], name: str) -> list[Document]:
    """``docs`` with their source set to ``name`` (``--source`` wins over the metadata's)."""
    from dataclasses import replace

    return [replace(d, metadata={**d.metadata, SOURCE_KEY: name}) for d in docs]


_CACHE: weakref.WeakKeyDictionary[Snapshot, Sources] = weakref.WeakKeyDictionary()


def index_sources(snap: Snapshot) -> Sources:
    """The sources of a snapshot's documents (computed once per snapshot)."""
    got = _CACHE.get(snap)
    if got is None:
        named = [source_of(snap.metadata(d)) for d in range(snap.n_docs)]
        names = tuple(sorted({n for n in named if n is not None}))
        pos = {n: i for i, n in enumerate(names)}
        of_doc = np.array([pos[n] if n is not None else -1 for n in named], np.int64)
        got = Sources(names, of_doc)
        _CACHE[snap] = got
    return got


def chunk_docs(snap: Snapshot, levels: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    """The document of each ``(level, chunk)`` pair."""
    docs = np.zeros(len(levels), np.int64)
    for j in np.unique(levels).tolist():
        m = levels == j
        docs[m] = snap.atoms["doc"][snap.levels[j]["first_atom"][chunks[m]]]
    return docs


def query_shares(snap: Snapshot, finest_ids: np.ndarray, names: tuple[str, ...] | list[str],
                 top: int = SHARE_TOP) -> np.ndarray:
    """Share of a query's ``top`` best finest chunks in each of ``names`` (sums to <= 1)."""
    out = np.zeros(len(names))
    ids = np.asarray(finest_ids[:top], np.int64)
    if not len(ids) or not len(names):
        return out
    docs = snap.atoms["doc"][snap.levels[0]["first_atom"][ids]]
    rows = index_sources(snap).rows_for(names)[docs]
    rows = rows[rows >= 0]
    np.add.at(out, rows, 1.0)
    return out / len(ids)


def describe_sources(snap: Snapshot) -> dict[str, int]:
    """``mograg info``'s ``sources``: documents per named source (empty: none named)."""
    return index_sources(snap).counts()

