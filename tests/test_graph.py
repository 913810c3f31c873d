"""MoGG graph: construction, hop expansion, and consistency across add/delete."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from corpus import FACTS, TOPICS
from mograg.graph import GraphSettings, build_graph, expand, graph_radii, knn_edges
from mograg.index import Index
from mograg.routing import granularity_names, granularity_picks
from mograg.types import Document

LEVELS = [16, 32, 64]


def test_knn_edges_known_neighbours():
    # two tight pairs far apart: each vector's nearest neighbour is its twin
    v = np.array([[1, 0, 0], [0.99, 0.14, 0], [0, 0, 1], [0, 0.14, 0.99]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rows, cols, vals = knn_edges(v, k=1, threshold=0.5, block=3)  # block < n: blocked path
    pairs = sorted(zip(rows.tolist(), cols.tolist(), strict=True))
    assert pairs == [(0, 1), (1, 0), (2, 3), (3, 2)]
    assert np.all(vals > 0.9)
    # a threshold above every similarity leaves no edge; never an edge to itself
    rows, cols, _ = knn_edges(v, k=3, threshold=0.999)
    assert len(rows) == 0
    rows, cols, _ = knn_edges(v, k=3, threshold=-1.0)
    assert np.all(rows != cols) and len(rows) == 12


def test_expand_orders_by_path_score():
    # path 0-1-2-3 plus a weak edge 0-3
    w = {(0, 1): 0.9, (1, 2): 0.8, (2, 3): 0.9, (0, 3): 0.1}
    r, c, v = zip(*[(a, b, x) for (a, b), x in w.items()], strict=True)
    adj = sp.coo_matrix((v, (r, c)), shape=(4, 4)).tocsr()
    adj = adj.maximum(adj.T).tocsr()
    seeds, scores = np.array([0]), np.array([1.0])
    assert [n for n, _ in expand(adj, seeds, scores, 0)] == [0]
    one = expand(adj, seeds, scores, 1)
    assert [n for n, _ in one] == [0, 1, 3]
    assert dict(one)[1] == pytest.approx(0.9) and dict(one)[3] == pytest.approx(0.1)
    two = dict(expand(adj, seeds, scores, 2))
    assert two[2] == pytest.approx(0.72)  # 0.9 * 0.8
    assert two[3] == pytest.approx(0.1)  # 0.72 * 0.9 via 2 is 3 hops away: not reached
    three = dict(expand(adj, seeds, scores, 3))
    assert three[3] == pytest.approx(0.648)  # best path 0-1-2-3 beats the weak direct edge
    # a node reached from two seeds appears once, at its first place
    both = expand(adj, np.array([0, 2]), np.array([1.0, 0.5]), 1)
    nodes = [n for n, _ in both]
    assert len(nodes) == len(set(nodes)) and set(nodes) == {0, 1, 2, 3}


@pytest.fixture(scope="module")
def gix(tmp_path_factory) -> Index:
    ix = Index.create(tmp_path_factory.mktemp("g") / "ix", levels=LEVELS,
                      graph=GraphSettings(k=2, threshold=0.3, max_radius=2))
    ix.add([Document(k, v) for k, v in {**TOPICS, **FACTS}.items()])
    return ix


def _check_graph(ix: Index) -> sp.csr_matrix:
    snap = ix.snapshot
    adj = snap.graph
    n0 = snap.n_chunks(0)
    assert adj.shape == (n0, n0)
    assert (adj != adj.T).nnz == 0  # symmetric
    assert adj.diagonal().sum() == 0
    docs = snap.atoms["doc"][snap.levels[0]["first_atom"]]
    # every pair of consecutive fine chunks of one document is linked
    same = np.flatnonzero(docs[1:] == docs[:-1])
    assert all(adj[i, i + 1] > 0 for i in same.tolist())
    return adj


def test_graph_built_and_offered_as_granularities(gix):
    adj = _check_graph(gix)
    assert adj.nnz > 0
    assert graph_radii(gix) == [0, 1, 2]
    names = granularity_names(gix)
    assert names[-3:] == ["graph:r=0", "graph:r=1", "graph:r=2"]
    q = gix.encode_queries(["Who first walked on the Moon?"])[0]
    rankings = gix.rank(q)
    r0 = granularity_picks(gix, q, rankings, "graph:r=0")
    r1 = granularity_picks(gix, q, rankings, "graph:r=1")
    assert [p.chunk for p in r0] == rankings[0].ids.tolist()
    assert len(r1) >= len(r0) and all(p.level == 0 for p in r1)
    # the top seed is followed by its neighbours
    top = r1[0].chunk
    neighbours = set(adj[top].indices.tolist())
    assert r1[1].chunk in neighbours or not neighbours
    res = gix.search("Who first walked on the Moon?", router="entropy", budget=40)
    assert res.n_tokens <= 40
    info = gix.info()["graph"]
    assert info["nodes"] == gix.snapshot.n_chunks(0) and info["edges"] > 0


def test_graph_follows_add_and_delete(gix):
    gen = gix.manifest["generation"]
    gix.add([Document("penguins", "Penguins cannot fly. They swim very fast in cold seas. "
                                   "Emperor penguins breed during the Antarctic winter.")])
    assert gix.manifest["generation"] == gen + 1
    _check_graph(gix)
    gix.delete(["coffee", "cats"])
    adj = _check_graph(gix)
    assert "coffee" not in gix.snapshot.doc_ids
    assert adj.shape[0] == gix.snapshot.n_chunks(0)
    # the graph directory of the old generation is gone, the new one is the only one
    graphs = list((gix.root / "graph").iterdir())
    assert [g.name for g in graphs] == [gix.manifest["derived"]["graph"]]


def test_enable_graph_on_existing_index(tmp_path):
    ix = Index.create(tmp_path / "ix", levels=LEVELS)
    ix.add([Document(k, v) for k, v in FACTS.items()])
    assert graph_radii(ix) == []
    stats = ix.enable_graph(GraphSettings(k=1, threshold=0.2, max_radius=1))
    assert stats["nodes"] == ix.snapshot.n_chunks(0)
    assert graph_radii(Index.open(ix.root)) == [0, 1]
    _check_graph(Index.open(ix.root))


def test_build_graph_without_sequential_edges(gix):
    adj = build_graph(gix.snapshot, GraphSettings(k=1, threshold=0.99, sequential=False))
    assert adj.nnz == 0 or adj.data.min() >= 0.99
