"""Query features that transfer to corpora a model has never seen.

Every feature is a rank, a ratio, a z-score within one query's own candidates, an
agreement between levels, a position pattern or the question's form. None depends on a
corpus's vocabulary or on the absolute scale of its scores (BM25 values grow with a
corpus's term statistics; cosine levels move with its domain), so a model trained on
some corpora can be applied to another. Computed from the rankings a search does anyway:
no extra embedding or index scan.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mograg.graph.titles import title_matcher
from mograg.types import LevelRanking, Query

if TYPE_CHECKING:
    from mograg.retrieval.view import IndexView
    from mograg.store.graph_files import Graph
    from mograg.store.snapshot import Snapshot

FEATURE_VERSION = 1
TOP = 10
WH_WORDS = ("what", "which", "who", "when", "where", "why", "how", "how many")
AUXILIARIES = frozenset({
    "is", "are", "was", "were", "do", "does", "did", "can", "could", "has", "have", "had",
    "will", "would", "should", "may",
})
QUESTION_FEATURES = [
    *(f"q_wh_{w.replace(' ', '_')}" for w in WH_WORDS), "q_yes_no", "q_other",
    "q_log_tokens", "q_has_number", "q_names", "q_lower_case", "q_quote", "q_named_docs",
]
LEVEL_FEATURES = [
    "dense_z1", "dense_gap12", "dense_gap1k", "dense_vs_finest", "bm25_ratio1k",
    "bm25_ratio21", "dense_bm25_agree", "fill", "doc_spread", "fine_in_top1",
    "fine_in_top3", "fine_clusters", "top1_in_coarser", "log_doc_chunks", "links_out",
]
_WORD = re.compile(r"[^\W\d_][\w'-]*|\d+")


def question_features(text: str, named_docs: int = 0, n_tokens: int = 0) -> list[float]:
    """The question's form: wh-word, yes/no, length, numbers, names, quotes."""
    words = _WORD.findall(text)
    low = [w.lower() for w in words]
    first = low[0] if low else ""
    wh = [0.0] * len(WH_WORDS)
    if "how" in low[:3] and len(low) > low.index("how") + 1 and low[low.index("how") + 1] in (
        "many", "much"
    ):
        wh[WH_WORDS.index("how many")] = 1.0
    else:
        for w in low[:3]:
            base = "who" if w in ("whom", "whose") else w
            if base in WH_WORDS:
                wh[WH_WORDS.index(base)] = 1.0
                break
    yes_no = float(not any(wh) and first in AUXILIARIES)
    other = float(not any(wh) and not yes_no)
    names = sum(1 for i, w in enumerate(words) if i > 0 and w[:1].isupper())
    n_tok = n_tokens or len(words)
    return [
        *wh, yes_no, other,
        float(np.log1p(n_tok)),
        float(any(ch.isdigit() for ch in text)),
        float(np.log1p(names)),
        float(text == text.lower()),
        float('"' in text or "\u201c" in text or "'" in text[:1]),
        float(np.log1p(named_docs)),
    ]


def _z(v: np.ndarray) -> tuple[float, float, float]:
    """Top-1 z-score, gap 1-2 and gap 1-k of one query's candidate scores, in std units."""
    if len(v) < 2:
        return 0.0, 0.0, 0.0
    s = np.sort(v.astype(np.float64))[::-1]
    # s.mean() and s.std() with their own operations, the mean computed once
    mean = np.add.reduce(s) / len(s)
    dev = s - mean
    sd = float(np.sqrt(np.add.reduce(np.multiply(dev, dev, out=dev)) / len(s))) or 1.0
    k = min(TOP, len(s)) - 1
    return (float((s[0] - mean) / sd), float((s[0] - s[1]) / sd), float((s[0] - s[k]) / sd))


def _rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two score lists over the same candidates (0 if undefined)."""
    if len(a) < 3 or bool((a == a[0]).all()) or bool((b == b[0]).all()):  # constant
        return 0.0
    # ranks are a permutation of 0..n-1 (ties keep their order), so Pearson's correlation
    # of the ranks is Spearman's closed form (np.corrcoef gives it to the last bits, at
    # ~30 times the cost)
    d = _ranks(a) - _ranks(b)
    n = len(d)
    return 1.0 - 6.0 * float(d @ d) / (n * (n * n - 1))


def _ranks(v: np.ndarray) -> np.ndarray:
    """Each value's rank, best (largest) first, ties in order (the inverse of the sort)."""
    ranks = np.empty(len(v), np.float64)
    ranks[np.argsort(-v, kind="stable")] = np.arange(len(v))
    return ranks


def level_features(
    snap: Snapshot, rankings: Sequence[LevelRanking], links: np.ndarray | None = None
) -> list[float]:
    """Per level: score shape, fill, spread over documents, agreement with other levels.

    ``links`` is each finest chunk's number of outgoing graph edges (None: no graph).
    """
    anc = snap.ancestors
    n_lv = len(rankings)
    fine_top = rankings[0].ids[:TOP] if n_lv else np.zeros(0, np.int64)
    d1_fine = float(rankings[0].dense[0]) if n_lv and len(rankings[0].dense) else 0.0
    bounds0 = snap.doc_bounds(0)
    tokens = [lv["n_tokens"] for lv in snap.levels]
    first_atom = [lv["first_atom"] for lv in snap.levels]
    atom_doc = snap.atoms["doc"]
    out: list[float] = []
    for j, r in enumerate(rankings):
        ids = r.ids
        if len(ids) == 0:
            out += [0.0] * len(LEVEL_FEATURES)
            continue
        z1, g12, g1k = _z(r.dense) if len(r.dense) else (0.0, 0.0, 0.0)
        bm = np.sort(r.bm25.astype(np.float64))[::-1] if len(r.bm25) else np.zeros(1)
        bm_ratio = float(bm[0] / (bm[:TOP].mean() or 1.0)) if bm[0] > 0 else 0.0
        bm_21 = float(bm[1] / bm[0]) if len(bm) > 1 and bm[0] > 0 else 0.0
        agree = _rank_agreement(r.dense, r.bm25) if len(r.bm25) == len(r.dense) else 0.0
        top = ids[:TOP]
        first5 = tokens[j][top[:5]]  # their mean: a sum of whole numbers over the count
        fill = float(int(first5.sum()) / len(first5) / max(snap.sizes[j], 1))
        docs = atom_doc[first_atom[j][top]]
        spread = len(set(docs.tolist())) / len(top)
        fa = anc[j][fine_top] if len(fine_top) else np.zeros(0, np.int64)
        in1 = np.count_nonzero(fa == ids[0]) / len(fa) if len(fa) else 0.0
        in3 = (np.count_nonzero((fa[:, None] == ids[None, :3]).any(axis=1)) / len(fa)
               if len(fa) else 0.0)
        clusters = len(set(fa.tolist())) / max(len(fa), 1)
        if j + 1 < n_lv and len(rankings[j + 1].ids):
            lo = snap.finest_range(j, int(ids[0]))[0]
            coarser = float(anc[j + 1][lo] in set(rankings[j + 1].ids[:3].tolist()))
        else:
            coarser = 0.0
        d = int(docs[0])
        doc_chunks = float(np.log1p(bounds0[d + 1] - bounds0[d]))
        if links is not None:
            lo, hi = snap.finest_range(j, int(ids[0]))
            n_links = float(np.log1p(links[lo:hi].sum()))
        else:
            n_links = 0.0
        d1 = float(r.dense[0]) if len(r.dense) else 0.0
        out += [z1, g12, g1k, d1 - d1_fine, bm_ratio, bm_21, agree, fill, spread, in1, in3,
                clusters, coarser, doc_chunks, n_links]
    return out


def feature_names(n_levels: int) -> list[str]:
    """Names of the feature vector for an index with ``n_levels`` levels."""
    per = [f"L{j}_{f}" for j in range(n_levels) for f in LEVEL_FEATURES]
    return [*QUESTION_FEATURES, *per]


def transfer_features(
    snap: Snapshot, query: Query, rankings: Sequence[LevelRanking], named_docs: int = 0,
    links: np.ndarray | None = None,
) -> np.ndarray:
    """The feature vector of one query (see :func:`feature_names`)."""
    q = question_features(query.text, named_docs, query.n_tokens)
    return np.array(q + level_features(snap, rankings, links), dtype=np.float64)


def graph_context(index: IndexView) -> tuple[Graph | None, np.ndarray | None]:
    """The index's graph and each finest chunk's out-degree (None, None without a graph)."""
    graph = index.snapshot.graph
    if graph is None:
        return None, None
    links = graph.cache.get("out_degree")
    if links is None:  # once per graph: every routed search asks
        links = graph.cache["out_degree"] = np.diff(graph.adj.indptr).astype(np.float64)
    return graph, links


def named_doc_count(snap: Snapshot, graph: Graph | None, query: Query) -> int:
    """How many documents the question names by title (0 without a graph)."""
    if graph is None or not len(graph.targets):
        return 0
    matcher = title_matcher(snap, graph)
    return len(matcher.named_in_question(query.text))
