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

Granularity ``graph:<size>:r=<r>`` starts from the documents the question names by
title and from the ranked chunks of level ``<size>``, and follows each by the
level-``<size>`` chunks holding what its finest chunks reach in up to ``r`` hops
(best path weight first, then similarity to the query). Routers choose among these
like among levels.
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from mograg.errors import IndexFormatError
from mograg.retrieval.rank import LevelRanking, Pick, Query
from mograg.store.storage import fsync_dir, new_name, write_bytes_durable

if TYPE_CHECKING:
    from mograg.index.core import Index
    from mograg.store.snapshot import Snapshot

GRAPH_FILE = "graph.npz"
TARGETS_FILE = "link-targets.npy"
BLOCK = 2048
SEQUENTIAL_WEIGHT = 0.9
MENTION_WEIGHT = 0.95
# a title named by more than this share of all chunks (and by more than
# MENTION_MIN_HUB chunks) is a hub: following it would flood every expansion
MENTION_MAX_SHARE = 0.01
MENTION_MIN_HUB = 20
MIN_TITLE_CHARS = 4
_WORD_RE = re.compile(r"\w+")
_DISAMBIGUATION_RE = re.compile(r"\s*\([^()]*\)\s*$")


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


def title_core(title: str) -> str:
    """The name a title is mentioned by: no trailing ``(disambiguation)``, ``_`` as space."""
    return _DISAMBIGUATION_RE.sub("", title.replace("_", " ")).strip()


def _linkable(core: str) -> tuple[str, ...] | None:
    """Word sequence to look for, or None for titles that would link by accident.

    Too-short titles and all-lower-case ones (typically file names such as ``notes``)
    are skipped; matching is case-sensitive and on whole words.
    """
    words = tuple(_WORD_RE.findall(core))
    if len(core) < MIN_TITLE_CHARS or not words:
        return None
    if core == core.lower() and core != core.upper():  # cased text, all lower case
        return None
    return words


class TitleMatcher:
    """Finds which documents a text names by title (longest match wins).

    A match inside a longer match is dropped: "Shirley Temple Black" names
    *Shirley Temple Black*, not also *Temple*. Matching is case-sensitive unless asked
    otherwise (for questions typed without capitals).
    """

    def __init__(self, titles: Iterable[tuple[int, str | None]]) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], int]]] = defaultdict(list)
        self._folded: dict[str, list[tuple[tuple[str, ...], int]]] = defaultdict(list)
        self.docs: list[int] = []  # the documents with a linkable title
        for d, title in titles:
            words = _linkable(title_core(title)) if title else None
            if words is not None:
                self.docs.append(d)
                self._by_first[words[0]].append((words, d))
                folded = tuple(w.casefold() for w in words)
                self._folded[folded[0]].append((folded, d))

    def __bool__(self) -> bool:
        return bool(self._by_first)

    def find(self, text: str, ignore_case: bool = False) -> list[int]:
        """Documents named in ``text``, in order of first mention."""
        words = _WORD_RE.findall(text)
        table = self._by_first
        if ignore_case:
            words = [w.casefold() for w in words]
            table = self._folded
        spans: list[tuple[int, int, int]] = []  # (start, end, doc)
        for i, w in enumerate(words):
            for seq, d in table.get(w, ()):
                if tuple(words[i : i + len(seq)]) == seq:
                    spans.append((i, i + len(seq), d))
        out: list[int] = []
        for start, end, d in spans:
            inside = any(s <= start and end <= e and e - s > end - start for s, e, _ in spans)
            if not inside and d not in out:
                out.append(d)
        return out


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


@dataclass
class Graph:
    """A stored graph: adjacency over the finest chunks and the documents titles link to."""

    adj: sp.csr_matrix
    targets: np.ndarray  # document numbers that are title-link targets
    _matcher: TitleMatcher | None = field(default=None, repr=False)

    def matcher(self, snap: Snapshot) -> TitleMatcher:
        """Title matcher over the link targets (built on first use, then kept)."""
        if self._matcher is None:
            self._matcher = TitleMatcher(
                (int(d), snap.metadata(int(d)).get("title")) for d in self.targets
            )
        return self._matcher


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
        r, c, w = knn_edges(vecs, settings.k, settings.threshold)
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
    adj = sp.csr_matrix((n, n), dtype=np.float32)
    for r, c, w in parts:  # an edge of two kinds keeps its larger weight
        adj = adj.maximum(sp.coo_matrix((w, (r, c)), shape=(n, n)).tocsr())
    adj.setdiag(0)
    adj.eliminate_zeros()
    return Graph(adj.tocsr(), targets), counts


def save_graph(root: Path, graph: Graph) -> str:
    """Write the graph to a new directory under ``root/graph``; return its name."""
    name = new_name("graph")
    d = root / "graph" / name
    d.mkdir(parents=True)
    buf = io.BytesIO()
    sp.save_npz(buf, graph.adj.tocsr(), compressed=False)
    write_bytes_durable(d / GRAPH_FILE, buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, graph.targets.astype(np.int64), allow_pickle=False)
    write_bytes_durable(d / TARGETS_FILE, buf.getvalue())
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


def graph_radii(index: Index) -> list[int]:
    """Hop radii offered as granularities (empty when the index has no graph).

    Radius 0 would be the level itself, so radii start at 1.
    """
    graph = index.manifest.get("graph")
    if not graph or not index.manifest.get("derived", {}).get("graph"):
        return []
    return list(range(1, int(graph.get("max_radius", 1)) + 1))


def graph_name(size: int, radius: int) -> str:
    """Granularity name of ``radius`` hops around the chunks of level ``size``."""
    return f"graph:{size}:r={radius}"


def parse_graph_name(name: str) -> tuple[int, int] | None:
    """``(size, radius)`` of a ``graph:<size>:r=<r>`` name, else None."""
    m = re.fullmatch(r"graph:(\d+):r=(\d+)", name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def read_graph(directory: Path) -> Graph:
    """Read a stored graph (one written before title targets existed links none)."""
    path = directory / GRAPH_FILE
    try:
        adj = sp.load_npz(path).tocsr()
        tpath = directory / TARGETS_FILE
        targets = (np.load(tpath, allow_pickle=False).astype(np.int64) if tpath.exists()
                   else np.zeros(0, np.int64))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"graph {directory} is unreadable ({exc}); rebuild it") from None
    return Graph(adj, targets)


def load_graph(index: Index) -> Graph:
    """The graph of the index's committed generation."""
    graph = index.snapshot.graph
    if graph is None:
        raise IndexFormatError(f"index {index.root} has no graph; build it with --graph")
    return graph


def reach(adj: sp.csr_matrix, sources: Iterable[int], radius: int) -> dict[int, float]:
    """Nodes within ``radius`` hops of ``sources`` (sources excluded), best path weight.

    A path's weight is the product of its edge weights; each node keeps its best.
    """
    indptr, indices, data = adj.indptr, adj.indices, adj.data
    best = {int(s): 1.0 for s in sources}
    start = set(best)
    frontier = dict(best)
    for _ in range(radius):
        nxt: dict[int, float] = {}
        for u, su in frontier.items():
            for p in range(indptr[u], indptr[u + 1]):
                v, sv = int(indices[p]), su * float(data[p])
                if sv > best.get(v, 0.0) and sv > nxt.get(v, 0.0):
                    nxt[v] = sv
        best.update(nxt)
        frontier = nxt
    return {v: w for v, w in best.items() if v not in start}


def named_seeds(snap: Snapshot, graph: Graph, query: Query, j: int) -> list[int]:
    """Level-``j`` chunks of the documents the question names by title.

    From each named document, its chunk most similar to the question; best first.
    The question is linked like a chunk: "Who directed Kiss and Tell?" starts from
    *Kiss and Tell* even when its text ranks low. A question without any capital
    letter ("who directed kiss and tell") is matched ignoring case.
    """
    if not len(graph.targets):
        return []
    # a question typed without capitals carries no case: match titles ignoring it
    docs = graph.matcher(snap).find(query.text, ignore_case=query.text == query.text.lower())
    if not docs:
        return []
    bounds = snap.doc_bounds(j)
    best: list[tuple[float, int]] = []
    for d in docs:
        own = np.arange(bounds[d], bounds[d + 1], dtype=np.int64)
        if len(own):
            sims = snap.chunk_vectors(j, own) @ query.vector
            k = int(np.argmax(sims))
            best.append((float(sims[k]), int(own[k])))
    return [c for _, c in sorted(best, key=lambda t: -t[0])]


def graph_picks(index: Index, query: Query, ranking: LevelRanking, radius: int) -> list[Pick]:
    """Candidates of ``graph:<size>:r=<radius>``: seeds, each followed by what it links to.

    Seeds are the chunks of the documents the question names by title, then the
    level's ranking. The finest chunks a seed reaches in up to ``radius`` hops are
    lifted to the seed's level; they follow it best path first, then by similarity to
    the query. Every chunk appears once.
    """
    graph = load_graph(index)
    snap = index.snapshot
    j = ranking.level
    anc = snap.ancestors[j]
    top = float(ranking.scores.max()) if len(ranking.scores) else 1.0
    named = named_seeds(snap, graph, query, j)
    seeds = [(c, top) for c in named]
    seeds += list(zip(ranking.ids.tolist(), ranking.scores.tolist(), strict=True))
    picks: list[Pick] = []
    placed: set[int] = set()
    for c, score in seeds:
        if c not in placed:
            placed.add(c)
            picks.append(Pick(j, c, score))
        lo, hi = snap.finest_range(j, c)
        lifted: dict[int, float] = {}
        for v, w in reach(graph.adj, range(lo, hi), radius).items():
            a = int(anc[v])
            if a not in placed and w > lifted.get(a, 0.0):
                lifted[a] = w
        if not lifted:
            continue
        cand = np.fromiter(lifted.keys(), np.int64, len(lifted))
        weight = np.fromiter(lifted.values(), np.float64, len(lifted))
        sims = snap.chunk_vectors(j, cand) @ query.vector
        for i in np.lexsort((-sims, -weight)).tolist():
            placed.add(int(cand[i]))
            picks.append(Pick(j, int(cand[i]), score * float(weight[i])))
    return picks
