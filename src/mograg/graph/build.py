"""MoGG: a graph over the finest chunks; "how many hops of linked context" is a granularity.

Nodes are the chunks of the finest level. Edges, built from what the index already
has (no LLM, no extra embedding):

* **mention** edges (default): a chunk that names another document's title links to
  that document's first chunk, like a hyperlink (``... starring Shirley Temple as ...``
  -> the lead of *Shirley Temple*). Titles named by more than 1% of all chunks are
  hubs and are not linked.
* **kNN** edges (opt-in, ``k > 0``): each chunk's ``k`` most similar chunks anywhere in
  the corpus (cosine above a threshold), by blocked matrix products.
* **sequential** edges (opt-in): neighbours within a document.

Granularity ``graph:<size>:r=<r>`` is walked in :mod:`mograg.graph.walk`; titles are
matched in :mod:`mograg.graph.titles`; the files live in :mod:`mograg.store.graph_files`.
Routers choose among graph granularities like among levels.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mograg.embed.base import calibrate_cosine
from mograg.graph.titles import TitleMatcher
from mograg.store.adjacency import Adjacency
from mograg.store.graph_files import Graph, save_graph

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot

BLOCK = 2048
SEQUENTIAL_WEIGHT = 0.9
MENTION_WEIGHT = 0.95
# a title named by more than this share of all chunks (and by more than
# MENTION_MIN_HUB chunks) is a hub: following it would flood every expansion
MENTION_MAX_SHARE = 0.01
MENTION_MIN_HUB = 20


@dataclass(frozen=True)
class GraphSettings:
    """How the graph is built (recorded in the manifest)."""

    mention: bool = True
    k: int = 0
    threshold: float = 0.5
    sequential: bool = False
    max_radius: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Manifest form."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphSettings:
        """Read the manifest form; a graph recorded before mention edges existed has none."""
        known = {f.name for f in fields(cls)}
        return cls(**{"mention": False, **{k: v for k, v in d.items() if k in known}})


def knn_edges(
    vectors: np.ndarray, k: int, threshold: float, block: int = BLOCK
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, cosine) of each row's k most similar other rows with cosine >= threshold."""
    n = len(vectors)
    if n < 2 or k < 1:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    v = np.asarray(vectors, dtype=np.float32)
    kk = min(k, n - 1)
    rows, cols, vals = [], [], []
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        sims = v[lo:hi] @ v.T
        sims[np.arange(hi - lo), np.arange(lo, hi)] = -np.inf
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        s = np.take_along_axis(sims, top, axis=1)
        keep = s >= threshold
        r = np.repeat(np.arange(lo, hi), kk).reshape(-1, kk)
        rows.append(r[keep])
        cols.append(top[keep])
        vals.append(s[keep])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals).astype(np.float32)


def mention_edges(
    texts: Iterable[str], chunk_docs: np.ndarray, titles: list[str | None], first_chunk: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chunk -> first chunk of every other document whose title it names.

    Returns ``(rows, cols, targets)``: the edges, and the documents that remain link
    targets (titled, and not hubs named by too many chunks).
    """
    matcher = TitleMatcher((d, t) for d, t in enumerate(titles) if first_chunk[d] >= 0)
    pairs: list[tuple[int, int]] = []
    if matcher:
        for c, text in enumerate(texts):
            pairs.extend((c, d) for d in matcher.find(text) if d != chunk_docs[c])
    mentions = Counter(d for _, d in pairs)
    hub = max(MENTION_MIN_HUB, MENTION_MAX_SHARE * len(chunk_docs))
    targets = np.array(sorted(d for d in matcher.docs if mentions[d] <= hub), np.int64)
    kept = [(c, int(first_chunk[d])) for c, d in pairs if mentions[d] <= hub]
    rows = np.array([c for c, _ in kept], np.int64)
    cols = np.array([t for _, t in kept], np.int64)
    return rows, cols, targets




def build_graph(snap: Snapshot, settings: GraphSettings) -> tuple[Graph, dict[str, int]]:
    """The graph over the finest chunks of ``snap`` and its edge counts per kind.

    kNN and sequential edges are symmetric; mention edges point from the mentioning
    chunk to the mentioned document's first chunk.
    """
    n = snap.n_chunks(0)
    docs = snap.atoms["doc"][snap.levels[0]["first_atom"]].astype(np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    counts = {"mention": 0, "knn": 0, "sequential": 0}
    targets = np.zeros(0, np.int64)
    if settings.k > 0 and n > 1:
        vecs = np.concatenate([np.asarray(m, np.float32) for m in snap.vectors[0]])
        # the threshold is on MiniLM's cosine scale: move it onto this embedder's
        floor = snap.cosine_floor
        r, c, w = knn_edges(vecs, settings.k, floor + settings.threshold * (1.0 - floor))
        w = calibrate_cosine(w, floor).astype(np.float32)
        parts += [(r, c, w), (c, r, w)]
        counts["knn"] = len(r)
    if settings.sequential and n > 1:
        same = np.flatnonzero(docs[1:] == docs[:-1])
        w = np.full(len(same), SEQUENTIAL_WEIGHT, np.float32)
        parts += [(same, same + 1, w), (same + 1, same, w)]
        counts["sequential"] = len(same)
    if settings.mention and n > 0:
        bounds = snap.doc_bounds(0)  # first chunk of each document, -1 if it has none
        first = np.where(bounds[1:] > bounds[:-1], bounds[:-1], -1)
        titles = [snap.metadata(d).get("title") for d in range(snap.n_docs)]
        r, c, targets = mention_edges(snap.level_texts(0), docs, titles, first)
        parts.append((r, c, np.full(len(r), MENTION_WEIGHT, np.float32)))
        counts["mention"] = len(r)
    # an edge of two kinds keeps its larger weight
    return Graph(Adjacency.from_edges(n, parts), targets), counts



def build_and_save(
    root: Path, snap: Snapshot, settings: GraphSettings,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Build and store the graph for a generation; return (dir name, stats)."""
    if progress:
        progress("graph", 0, 1)
    t0 = time.perf_counter()
    graph, counts = build_graph(snap, settings)
    name = save_graph(root, graph)
    if progress:
        progress("graph", 1, 1)
    n_bytes = sum(p.stat().st_size for p in (root / "graph" / name).iterdir())
    stats = {"nodes": int(graph.adj.shape[0]), "edges": int(graph.adj.nnz),
             "link_targets": len(graph.targets),
             **{f"{kind}_edges": n for kind, n in counts.items()},
             "seconds": round(time.perf_counter() - t0, 3), "bytes": int(n_bytes)}
    return name, stats

