"""MoGG graph: mention links, opt-in kNN/sequential edges, hop reach, granularities,
and consistency across add/delete."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

import mograg.graph.build as graph_mod
from clirun import run
from corpus import FACTS
from mograg.errors import MogragError
from mograg.graph.build import (
    GraphSettings,
    build_graph,
    knn_edges,
    mention_edges,
)
from mograg.graph.titles import TitleMatcher, title_core
from mograg.graph.walk import graph_picks, graph_radii, named_seeds, reach
from mograg.index.core import Index
from mograg.index.migrate import enable_graph
from mograg.retrieval.routing import granularity_names, granularity_picks
from mograg.store.adjacency import Adjacency
from mograg.types import Document, Granularity

LEVELS = [16, 32, 64]

# Wikipedia-style pages: each names the next one's title (a bridge chain)
LINKED = {
    "kiss-and-tell": (
        "Kiss and Tell (1945 film)",
        "Kiss and Tell is a 1945 American comedy film. It stars Shirley Temple as the "
        "teenager Corliss Archer. The story follows a family feud between neighbours. "
        "The film was a box office success in its year.",
    ),
    "shirley-temple": (
        "Shirley Temple",
        "Shirley Temple Black was an American actress and diplomat. She was the most "
        "popular film star of the 1930s. As an adult she served as Chief of Protocol of "
        "the United States. She later became an ambassador to Ghana.",
    ),
    "protocol": (
        "Chief of Protocol of the United States",
        "The Chief of Protocol advises the President and the Secretary of State on "
        "diplomatic etiquette. The office organises state visits and foreign ceremonies.",
    ),
    "notes": ("notes", "Some notes: the film notes were lost. Nothing else is recorded here."),
}


def _docs(ids: list[str] | None = None) -> list[Document]:
    return [Document(k, text, {"title": title})
            for k, (title, text) in LINKED.items() if ids is None or k in ids]


def test_title_core_drops_disambiguation():
    assert title_core("Kiss and Tell (1945 film)") == "Kiss and Tell"
    assert title_core("Shirley Temple") == "Shirley Temple"


def test_mention_edges_whole_words_case_and_own_document():
    texts = [
        "A film starring Shirley Temple.",  # names doc 1
        "shirley temple in lower case and Shirley Templeton",  # neither counts
        "Shirley Temple on her own page.",  # own document: no self link
        "Kiss and Tell is named, and so are notes.",  # doc 0 by its core title
        "Later Shirley Temple again, with Kiss and Tell.",
    ]
    chunk_docs = np.array([0, 2, 1, 3, 3])
    titles = ["Kiss and Tell (1945 film)", "Shirley Temple", "notes", None]
    first = np.array([0, 2, 1, 3])
    rows, cols, targets = mention_edges(texts, chunk_docs, titles, first)
    pairs = sorted(zip(rows.tolist(), cols.tolist(), strict=True))
    # chunk 0 -> first chunk of doc 1 (2); 3 -> doc 0 (0); 4 -> doc 1 and doc 0
    # "notes" (lower case, typically a file name) and untitled docs are never targets
    assert pairs == [(0, 2), (3, 0), (4, 0), (4, 2)]
    assert targets.tolist() == [0, 1]


def test_mention_hubs_are_dropped(monkeypatch):
    monkeypatch.setattr(graph_mod, "MENTION_MIN_HUB", 2)
    monkeypatch.setattr(graph_mod, "MENTION_MAX_SHARE", 0.0)
    texts = ["About Europe."] * 3 + ["About Ghana."] * 2 + ["Europe", "Ghana"]
    chunk_docs = np.array([0, 0, 0, 0, 0, 1, 2])
    rows, cols, targets = mention_edges(texts, chunk_docs, [None, "Europe", "Ghana"],
                                        np.array([0, 5, 6]))
    # Europe is named by 3 chunks (> 2): a hub, dropped; Ghana by 2: kept
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(3, 6), (4, 6)]
    assert targets.tolist() == [2]


def test_title_matcher_prefers_the_longest_name():
    m = TitleMatcher([(0, "Temple"), (1, "Shirley Temple"), (2, "Shirley Temple Black"),
                      (3, "release_notes"), (4, "Super_Bowl_50")])
    assert m.find("Shirley Temple Black met Shirley Temple at the Temple.") == [2, 1, 0]
    assert m.find("The Super Bowl 50 release notes.") == [4]
    assert m.find("shirley temple") == []
    assert m.find("shirley temple black and the temple", ignore_case=True) == [2, 0]
    assert not TitleMatcher([(0, "notes"), (1, None), (2, "abc")])


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


def test_reach_keeps_best_path_within_radius():
    # directed path 0->1->2->3 plus a weak shortcut 0->3
    w = {(0, 1): 0.9, (1, 2): 0.8, (2, 3): 0.9, (0, 3): 0.1}
    r, c, v = zip(*[(a, b, x) for (a, b), x in w.items()], strict=True)
    adj = Adjacency.from_edges(5, [(np.array(r), np.array(c), np.array(v))])
    assert reach(adj, [0], 0) == {}
    assert reach(adj, [0], 1) == pytest.approx({1: 0.9, 3: 0.1})
    two = reach(adj, [0], 2)
    assert two[2] == pytest.approx(0.72) and two[3] == pytest.approx(0.1)
    assert reach(adj, [0], 3)[3] == pytest.approx(0.648)  # 0-1-2-3 beats the shortcut
    assert reach(adj, [3], 3) == {}  # edges are directed
    assert reach(adj, [0, 1], 1) == pytest.approx({2: 0.8, 3: 0.1})  # sources excluded


@pytest.fixture(scope="module")
def gix(tmp_path_factory, shared_embedder) -> Index:
    ix = Index.create(tmp_path_factory.mktemp("g") / "ix", levels=LEVELS,
                      graph=GraphSettings(max_radius=2))
    ix.add(_docs())
    return ix


def _first_chunk(ix: Index, doc_id: str) -> int:
    snap = ix.snapshot
    docs = snap.atoms["doc"][snap.levels[0]["first_atom"]]
    return int(np.flatnonzero(docs == snap.doc_index[doc_id])[0])


def _scipy(adj: Adjacency) -> sp.csr_matrix:
    """The reference implementation's view of a graph (scipy is a test dependency only)."""
    return sp.csr_matrix((adj.data, adj.indices, adj.indptr), shape=adj.shape)


def _check_graph(ix: Index) -> sp.csr_matrix:
    """The stored graph is exactly a fresh build from the committed snapshot."""
    snap = ix.snapshot
    adj = _scipy(snap.graph.adj)
    n0 = snap.n_chunks(0)
    assert adj.shape == (n0, n0) and adj.diagonal().sum() == 0
    fresh, _ = build_graph(snap, GraphSettings.from_dict(ix.manifest["graph"]))
    assert (adj != _scipy(fresh.adj)).nnz == 0
    assert snap.graph.targets.tolist() == fresh.targets.tolist()
    return adj


def _linked(ix: Index, src: str, dst: str) -> bool:
    snap = ix.snapshot
    adj = _scipy(snap.graph.adj)
    docs = snap.atoms["doc"][snap.levels[0]["first_atom"]]
    rows = np.flatnonzero(docs == snap.doc_index[src])
    return bool(adj[rows][:, _first_chunk(ix, dst)].nnz)


def test_mentions_link_to_the_named_page_lead(gix):
    adj = _check_graph(gix)
    assert _linked(gix, "kiss-and-tell", "shirley-temple")
    assert _linked(gix, "shirley-temple", "protocol")
    assert not _linked(gix, "shirley-temple", "kiss-and-tell")  # not named there
    assert adj[:, _first_chunk(gix, "notes")].nnz == 0  # "notes" is no link target
    stats = gix.info()["graph"]
    assert stats["nodes"] == gix.snapshot.n_chunks(0)
    assert stats["mention_edges"] == adj.nnz and stats["knn_edges"] == 0


def test_graph_granularities_follow_seeds_with_linked_chunks(gix):
    assert graph_radii(gix.manifest) == [1, 2]
    names = granularity_names(gix)
    assert names[:3] == ["level:16", "level:32", "level:64"]
    assert names[3:] == [f"graph:{s}:r={r}" for s in LEVELS for r in (1, 2)]
    assert Granularity.parse("graph:32:r=2") == Granularity.graph(32, 2)
    assert Granularity.parse("graph:r=2") is None
    assert str(Granularity.graph(32, 2)) == "graph:32:r=2"
    q = gix.encode_queries(["Which comedy film stars Corliss Archer as a teenager?"])[0]
    rankings = gix.rank(q)
    snap = gix.snapshot
    for j, size in enumerate(LEVELS):
        picks = granularity_picks(gix, q, rankings, f"graph:{size}:r=1")
        chunks = [p.chunk for p in picks]
        assert all(p.level == j for p in picks) and len(chunks) == len(set(chunks))
        assert set(rankings[j].ids.tolist()) <= set(chunks)
        # wherever the kiss-and-tell chunk naming Shirley Temple is ranked, the chunk
        # holding Shirley Temple's lead follows it before the next ranked chunk
        naming = int(snap.ancestors[j][_naming_chunk(gix)])
        lead = int(snap.ancestors[j][_first_chunk(gix, "shirley-temple")])
        pos = chunks.index(naming)
        assert lead in chunks[: pos + 2]
    # two hops reach the protocol page through Shirley Temple's page
    two = graph_picks(gix.snapshot, q, rankings[0], 2)
    docs = [gix.snapshot.chunk_span(0, p.chunk)[0] for p in two]
    assert gix.snapshot.doc_index["protocol"] in docs


def test_a_question_naming_a_title_starts_from_that_document(gix):
    snap = gix.snapshot
    question = "What did Shirley Temple do as an adult?"
    q = gix.encode_queries([question])[0]
    graph = snap.graph
    for j in range(len(LEVELS)):
        seeds = named_seeds(snap, graph, q, j)
        assert [snap.doc_ids[snap.chunk_span(j, c)[0]] for c in seeds] == ["shirley-temple"]
        # its chunk most similar to the question, placed first by the graph granularity
        chunk_docs = snap.atoms["doc"][snap.levels[j]["first_atom"]]
        own = np.flatnonzero(chunk_docs == snap.doc_index["shirley-temple"])
        sims = snap.chunk_vectors(j, own) @ q.vector
        assert seeds[0] == own[int(np.argmax(sims))]
        picks = graph_picks(gix.snapshot, q, gix.rank(q)[j], 1)
        assert picks[0].chunk == seeds[0]
    # case is matched when the question has any capital; ignored when it has none
    mixed, lower = gix.encode_queries(["What did shirley temple do?", "what did shirley temple do"])
    assert named_seeds(snap, graph, mixed, 0) == []
    assert [snap.chunk_span(0, c)[0] for c in named_seeds(snap, graph, lower, 0)] == [
        snap.doc_index["shirley-temple"]]
    # the level granularities are untouched by the title match
    assert granularity_picks(gix, q, gix.rank(q), "level:16")[0].chunk == gix.rank(q)[0].ids[0]


def _naming_chunk(ix: Index) -> int:
    snap = ix.snapshot
    for c, text in enumerate(snap.level_texts(0)):
        doc = snap.doc_ids[snap.chunk_span(0, c)[0]]
        if doc == "kiss-and-tell" and "Shirley Temple" in text:
            return c
    raise AssertionError("no chunk names Shirley Temple")


def test_fixed_graph_granularity_search(gix):
    res = gix.search("Which comedy film stars Corliss Archer as a teenager?",
                     router="graph:64:r=1", budget=80)
    assert res.routing == {"router": "graph:64:r=1", "chosen": ["graph:64:r=1"]}
    assert res.n_tokens <= 80
    assert {"kiss-and-tell", "shirley-temple"} <= {h.doc_id for h in res.hits}
    lead = LINKED["shirley-temple"][1].split(". ")[0]
    assert any(lead in h.text for h in res.hits)
    with pytest.raises(MogragError, match="graph:64:r=1"):
        gix.search("x", router="graph:64:r=9")
    routed = gix.search("Which comedy film stars Corliss Archer?", router="entropy", budget=40)
    assert routed.n_tokens <= 40
    # with a graph, the training-free router weighs the one-hop graph granularities
    weights = routed.routing["weights"]
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-3)
    assert all(w == 0 for n, w in weights.items() if not n.endswith(":r=1"))
    assert routed.routing["chosen"][0].startswith("graph:")


def test_graph_follows_add_and_delete(gix):
    gen = gix.manifest["generation"]
    gix.delete(["shirley-temple"])
    assert gix.manifest["generation"] == gen + 1
    adj = _check_graph(gix)
    assert adj.shape[0] == gix.snapshot.n_chunks(0)
    assert not any(_linked(gix, s, "protocol") for s in ("kiss-and-tell", "notes"))
    gix.add(_docs(["shirley-temple"]))
    _check_graph(gix)
    assert _linked(gix, "kiss-and-tell", "shirley-temple")
    assert _linked(gix, "shirley-temple", "protocol")
    # the graph directory of the old generation is gone, the new one is the only one
    graphs = list((gix.root / "graph").iterdir())
    assert [g.name for g in graphs] == [gix.manifest["derived"]["graph"]]


def test_enable_graph_on_existing_index(tmp_path, shared_embedder):
    ix = Index.create(tmp_path / "ix", levels=LEVELS)
    ix.add(_docs())
    assert graph_radii(ix.manifest) == []
    stats = enable_graph(ix)
    assert stats["nodes"] == ix.snapshot.n_chunks(0) and stats["mention_edges"] > 0
    reopened = Index.open(ix.root)
    assert graph_radii(reopened.manifest) == [1]
    _check_graph(reopened)


def test_knn_and_sequential_edges_are_opt_in(gix):
    snap = gix.snapshot
    graph, counts = build_graph(snap, GraphSettings(mention=False, k=1, threshold=0.2,
                                                    sequential=True))
    adj = _scipy(graph.adj)
    assert counts["mention"] == 0 and counts["knn"] > 0 and counts["sequential"] > 0
    assert (adj != adj.T).nnz == 0  # kNN and sequential edges are symmetric
    docs = snap.atoms["doc"][snap.levels[0]["first_atom"]]
    same = np.flatnonzero(docs[1:] == docs[:-1])
    assert all(adj[i, i + 1] > 0 for i in same.tolist())
    none, counts = build_graph(snap, GraphSettings(mention=False))
    assert none.adj.nnz == 0 and sum(counts.values()) == 0 and len(none.targets) == 0


def test_graph_settings_of_older_manifests_have_no_mentions():
    old = GraphSettings.from_dict({"k": 3, "threshold": 0.5, "max_radius": 3,
                                   "sequential": True, "unknown": 1})
    assert old == GraphSettings(mention=False, k=3, threshold=0.5, max_radius=3,
                                sequential=True)
    assert GraphSettings.from_dict(GraphSettings().to_dict()) == GraphSettings()


def test_cli_index_with_graph(tmp_path, shared_embedder):
    src = tmp_path / "pages.jsonl"
    src.write_text("".join(json.dumps({"id": d.id, "text": d.text, "metadata": d.metadata}) + "\n"
                           for d in [*_docs(), *(Document(k, v) for k, v in FACTS.items())]))
    ix_dir = tmp_path / "ix"
    code, _, err = run("index", src, "--index", ix_dir, "--graph", "--graph-radius", 2,
                       "--levels", "16,32,64", "--quiet")
    assert code == 0, err
    assert Index.open(ix_dir).manifest["graph"] == GraphSettings(max_radius=2).to_dict()
    code, out, err = run("search", "Which film stars Corliss Archer?", "--index", ix_dir,
                         "--router", "graph:32:r=2", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["routing"]["router"] == "graph:32:r=2"
    assert "shirley-temple" in {h["doc_id"] for h in res["hits"]}
    code, _, err = run("search", "x", "--index", ix_dir, "--router", "graph:32:r=7")
    assert code == 2 and "unknown graph granularity" in err and len(err.splitlines()) == 1


def test_eval_cache_scores_the_graph_only_when_asked(tmp_path, monkeypatch, shared_embedder):
    from mograg.eval.commands import index_docs_cached

    monkeypatch.setenv("MOGRAG_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "pages.jsonl"
    src.write_text("".join(json.dumps({"id": d.id, "text": d.text, "metadata": d.metadata}) + "\n"
                           for d in _docs()))
    with_graph = index_docs_cached(src, "16,32", graph=True)
    assert any(n.startswith("graph:") for n in granularity_names(with_graph))
    levels_only = index_docs_cached(src, "16,32")  # same cached index, graph hidden
    assert levels_only.root == with_graph.root
    assert granularity_names(levels_only) == ["level:16", "level:32"]
    assert levels_only.snapshot.graph is None
    again = index_docs_cached(src, "16,32", graph=True)
    assert again.manifest["generation"] == with_graph.manifest["generation"]  # not rebuilt


def _reference(n: int, parts: list) -> sp.csr_matrix:
    """How the graph was built with scipy before: elementwise max, no diagonal, no zeros."""
    adj = sp.csr_matrix((n, n), dtype=np.float32)
    for r, c, w in parts:
        adj = adj.maximum(sp.coo_matrix((w, (r, c)), shape=(n, n)).tocsr())
    adj.setdiag(0)
    adj.eliminate_zeros()
    return adj.tocsr()


@pytest.mark.parametrize("seed", range(20))
def test_adjacency_matches_scipy_build_and_files(seed, tmp_path):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    parts = []
    for _ in range(int(rng.integers(0, 4))):
        m = int(rng.integers(0, 60))
        parts.append((rng.integers(0, n, m), rng.integers(0, n, m),
                      rng.choice([-0.5, 0.0, 0.3, 0.7, 1.0], m).astype(np.float32)))
    ours = Adjacency.from_edges(n, parts)
    ref = _reference(n, parts)
    ref.sort_indices()
    assert ours.shape == ref.shape and ours.nnz == ref.nnz
    assert ours.indptr.tolist() == ref.indptr.tolist()
    assert ours.indices.tolist() == ref.indices.tolist()
    assert ours.data == pytest.approx(ref.data, abs=1e-6)
    # files are interchangeable with scipy.sparse.save_npz / load_npz
    sp.save_npz(tmp_path / "ref.npz", ref, compressed=False)
    loaded = Adjacency.load(tmp_path / "ref.npz")
    assert loaded.indices.tolist() == ours.indices.tolist()
    ours.save(tmp_path / "ours.npz")
    assert abs(sp.load_npz(tmp_path / "ours.npz") - ref).max() <= 1e-6


@pytest.mark.parametrize("seed", range(30))
def test_lifting_all_seeds_at_once_matches_walking_each(seed):
    from mograg.graph.walk import _lift, lift_seeds

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    m = int(rng.integers(0, 120))
    adj = Adjacency.from_edges(n, [(rng.integers(0, n, m), rng.integers(0, n, m),
                                    rng.choice([0.2, 0.5, 0.5, 0.9, 1.0], m).astype(np.float32))])
    anc = np.sort(rng.integers(0, max(1, n // 3), n))  # finest chunk -> level chunk
    anc = np.unique(anc, return_inverse=True)[1].astype(np.int64)  # levels number 0..k
    seeds = rng.integers(0, int(anc[-1]) + 1, int(rng.integers(0, 12))).tolist()
    fast = lift_seeds(anc, adj, seeds, 1)
    for c, (chunks, weights) in zip(seeds, fast, strict=True):
        lo, hi = int(np.searchsorted(anc, c)), int(np.searchsorted(anc, c, "right"))
        ref_chunks, ref_weights = _lift(anc, reach(adj, range(lo, hi), 1))
        assert chunks.tolist() == ref_chunks.tolist()  # same order, not only the same set
        assert weights.tolist() == ref_weights.tolist()
