"""MoGG: a graph over the finest chunks, with the hop radius as a granularity.

Nodes are the chunks of the finest level. Edges link each chunk to its neighbours in
the same document (sequential edges) and to its ``k`` most similar chunks anywhere in
the corpus (cosine above a threshold), computed from the vectors the index already
has with blocked matrix products — no LLM, no extra embedding. Retrieval expands the
best fine chunks ("seeds") by up to ``r`` hops; the router picks ``r`` per query like
it picks a level.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from mograg.errors import IndexFormatError
from mograg.retrieve import LevelRanking, Pick, Query
from mograg.storage import fsync_dir, new_name, write_bytes_durable

if TYPE_CHECKING:
    from mograg.index import Index
    from mograg.snapshot import Snapshot

GRAPH_FILE = "graph.npz"
BLOCK = 2048
SEQUENTIAL_WEIGHT = 0.9


@dataclass(frozen=True)
class GraphSettings:
    """How the graph is built (recorded in the manifest)."""

    k: int = 3
    threshold: float = 0.5
    max_radius: int = 3
    sequential: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Manifest form."""
        return {"k": self.k, "threshold": self.threshold, "max_radius": self.max_radius,
                "sequential": self.sequential}


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


def build_graph(snap: Snapshot, settings: GraphSettings) -> sp.csr_matrix:
    """Symmetric weighted adjacency over the finest chunks of ``snap``."""
    n = snap.n_chunks(0)
    vecs = (np.concatenate([np.asarray(m, np.float32) for m in snap.vectors[0]])
            if n else np.zeros((0, snap.dim), np.float32))
    r, c, w = knn_edges(vecs, settings.k, settings.threshold)
    if settings.sequential and n > 1:
        docs = snap.atoms["doc"][snap.levels[0]["first_atom"]]
        same = np.flatnonzero(docs[1:] == docs[:-1])
        r = np.concatenate([r, same])
        c = np.concatenate([c, same + 1])
        w = np.concatenate([w, np.full(len(same), SEQUENTIAL_WEIGHT, np.float32)])
    adj = sp.coo_matrix((w, (r, c)), shape=(n, n)).tocsr()
    return adj.maximum(adj.T).tocsr()


def save_graph(root: Path, adj: sp.csr_matrix) -> str:
    """Write the graph to a new directory under ``root/graph``; return its name."""
    name = new_name("graph")
    d = root / "graph" / name
    d.mkdir(parents=True)
    buf = io.BytesIO()
    sp.save_npz(buf, adj.tocsr(), compressed=False)
    write_bytes_durable(d / GRAPH_FILE, buf.getvalue())
    fsync_dir(d)
    return name


def build_and_save(
    root: Path, snap: Snapshot, settings: GraphSettings,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Build and store the graph for a generation; return (dir name, stats)."""
    if progress:
        progress("graph", 0, 1)
    t0 = time.perf_counter()
    adj = build_graph(snap, settings)
    name = save_graph(root, adj)
    if progress:
        progress("graph", 1, 1)
    n_bytes = (root / "graph" / name / GRAPH_FILE).stat().st_size
    stats = {"nodes": int(adj.shape[0]), "edges": int(adj.nnz // 2),
             "seconds": round(time.perf_counter() - t0, 3), "bytes": int(n_bytes)}
    return name, stats


def graph_radii(index: Index) -> list[int]:
    """Hop radii offered as granularities (empty when the index has no graph)."""
    graph = index.manifest.get("graph")
    if not graph or not index.manifest.get("derived", {}).get("graph"):
        return []
    return list(range(int(graph.get("max_radius", 3)) + 1))


def read_graph(directory: Path) -> sp.csr_matrix:
    """Read a stored graph."""
    path = directory / GRAPH_FILE
    try:
        return sp.load_npz(path).tocsr()
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"graph {path} is unreadable ({exc}); rebuild it") from None


def load_graph(index: Index) -> sp.csr_matrix:
    """The graph of the index's committed generation."""
    adj = index.snapshot.graph
    if adj is None:
        raise IndexFormatError(f"index {index.root} has no graph; build it with --graph")
    return adj


def expand(
    adj: sp.csr_matrix, seeds: np.ndarray, seed_scores: np.ndarray, radius: int
) -> list[tuple[int, float]]:
    """Seeds followed by their neighbourhoods up to ``radius`` hops.

    Each seed is followed by the nodes it reaches (best path score = seed score times
    the product of edge weights), best first; a node appears once, at its first place.
    """
    out: list[tuple[int, float]] = []
    seen: set[int] = set()
    indptr, indices, data = adj.indptr, adj.indices, adj.data
    for s, score in zip(seeds.tolist(), seed_scores.tolist(), strict=True):
        if s in seen:
            continue
        best = {s: float(score)}
        frontier = {s: float(score)}
        for _ in range(radius):
            nxt: dict[int, float] = {}
            for u, su in frontier.items():
                for p in range(indptr[u], indptr[u + 1]):
                    v, sv = int(indices[p]), su * float(data[p])
                    if sv > best.get(v, -1.0) and sv > nxt.get(v, -1.0):
                        nxt[v] = sv
            for v, sv in nxt.items():
                best[v] = max(best.get(v, -1.0), sv)
            frontier = nxt
        seen.add(s)
        out.append((s, float(score)))
        for v, sv in sorted(best.items(), key=lambda t: (-t[1], t[0])):
            if v not in seen:
                seen.add(v)
                out.append((v, sv))
    return out


def graph_picks(index: Index, query: Query, finest: LevelRanking, radius: int) -> list[Pick]:
    """Candidates of granularity ``graph:r=radius``: seeds and their hop neighbourhoods."""
    del query
    adj = load_graph(index)
    seeds, scores = finest.ids, finest.scores
    top = float(scores.max()) if len(scores) else 1.0
    norm = scores / top if top > 0 else scores
    return [Pick(0, node, s) for node, s in expand(adj, seeds, norm, radius)]
