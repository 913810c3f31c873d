"""Tests for mograg.retrieval.rank and routing: ranking, token-budget assembly, span hygiene."""

from __future__ import annotations

import numpy as np
import pytest

import mograg.retrieval.prune
from corpus import FACTS
from mograg.index.core import Index
from mograg.retrieval.rank import assemble, rank_level
from mograg.retrieval.routing import mix_picks
from mograg.types import MODES, STRATEGIES, Document, Pick

LEVELS = [8, 16, 32, 64]
BUDGETS = [5, 20, 64, 150]

TEXTS = {
    **FACTS,
    "short": "Penguins cannot fly. They swim very fast.",
}

QUERIES = [
    "Who first walked on the Moon?",
    "how much caffeine is in a cup of coffee",
    "why do rivers form deltas",
    "the of and is it",  # stopwords only: no BM25 terms at all
    "penguins",
]


@pytest.fixture(autouse=True)
def _no_pruning(monkeypatch):
    """These tests check how the budget is filled: no relevance floor, no folding
    (tests/test_prune.py checks those)."""
    monkeypatch.setattr(mograg.retrieval.prune, "FLOOR", -1.0)
    monkeypatch.setattr(mograg.retrieval.prune, "DUPLICATE_SHARE", 2.0)


@pytest.fixture(scope="module")
def ix(tmp_path_factory, shared_embedder) -> Index:
    index = Index.create(tmp_path_factory.mktemp("retrieve") / "ix", levels=LEVELS)
    index.add([Document(k, v) for k, v in TEXTS.items()])
    return index


@pytest.fixture(scope="module")
def queries(ix):
    return ix.encode_queries(QUERIES)


def atom_range(ix: Index, doc_id: str, start: int, end: int) -> tuple[int, int]:
    """Global atom indices (first, last) a hit covers; asserts it is sentence-aligned."""
    snap = ix.snapshot
    d = snap.doc_index[doc_id]
    atoms = snap.atoms
    in_doc = np.flatnonzero(atoms["doc"] == d)
    starts = atoms["start"][in_doc]
    ends = atoms["end"][in_doc]
    assert start in starts.tolist() and end in ends.tolist(), "hit not on sentence boundaries"
    first = int(in_doc[starts.tolist().index(start)])
    last = int(in_doc[ends.tolist().index(end)])
    return first, last


def check_hits(ix: Index, hits, budget: int, max_level: int | None = None) -> None:
    """Every invariant a list of hits must satisfy."""
    snap = ix.snapshot
    assert sum(h.n_tokens for h in hits) <= budget
    covered: dict[int, int] = {}
    for k, h in enumerate(hits):
        assert h.text == TEXTS[h.doc_id][h.start : h.end]
        assert h.level in LEVELS
        if max_level is not None:
            assert h.level <= max_level
        first, last = atom_range(ix, h.doc_id, h.start, h.end)
        assert h.n_tokens == int(snap.atoms["n_tokens"][first : last + 1].sum())
        for a in range(first, last + 1):
            assert a not in covered, "sentence returned twice"
            covered[a] = k
    # adjacent sentences of one document always come back as one span
    for a, k in covered.items():
        nxt = covered.get(a + 1)
        if nxt is not None and snap.atoms["doc"][a] == snap.atoms["doc"][a + 1]:
            assert nxt == k, "adjacent spans were not merged"
    # best first
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_corpus_shape(ix):
    # the tests below rely on these: several chunks per coarse level, no 1-token sentence
    # (sentences longer than the finest level are cut at 8 tokens, leaving short tails)
    snap = ix.snapshot
    assert int(snap.atoms["n_tokens"].min()) >= 2
    assert snap.n_chunks(0) > snap.n_chunks(3) >= len(TEXTS)
    assert int(snap.levels[3]["n_tokens"].max()) > 20


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("level", LEVELS)
def test_fixed_level_invariants(ix, queries, mode, level):
    for q in queries:
        for budget in BUDGETS:
            res = ix.search(q, budget=budget, level=level, mode=mode)
            check_hits(ix, res.hits, budget, max_level=level)
            assert res.routing["chosen"] == [f"level:{level}"]  # a name, like routed searches
            if budget >= 20:
                assert res.hits, (q.text, budget)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_routed_invariants(ix, queries, mode, strategy):
    for q in queries:
        for budget in BUDGETS:
            res = ix.search(q, budget=budget, mode=mode, strategy=strategy)
            check_hits(ix, res.hits, budget)
            w = res.routing["weights"]
            assert list(w) == [f"level:{s}" for s in LEVELS]
            assert sum(w.values()) == pytest.approx(1.0, abs=1e-3)
            # auto resolves to spans where a span model serves the router, else blend
            resolved = {"auto": "blend"}.get(strategy, strategy)  # these levels: no span model
            assert res.routing["strategy"] == resolved
            # BM25 alone has nothing to go on for a stopword-only query
            if budget >= 20 and not (mode == "bm25" and not q.terms):
                assert res.hits, (q.text, budget, strategy)


def test_budget_below_every_sentence(ix, queries):
    budget = int(ix.snapshot.atoms["n_tokens"].min()) - 1
    assert budget >= 1
    for q in queries:
        for strategy in STRATEGIES:
            res = ix.search(q, budget=budget, strategy=strategy)
            assert res.hits == [] and res.n_tokens == 0
        for level in LEVELS:
            assert ix.search(q, budget=budget, level=level).hits == []


def test_coarse_level_descends_into_children(ix, queries):
    q = queries[0]
    res = ix.search(q, budget=12, level=64, mode="dense")
    assert res.hits
    check_hits(ix, res.hits, 12, max_level=32)  # taken from below the 64-token level
    # the part it keeps comes from the best coarse chunk, which is about the Moon landing
    assert res.hits[0].doc_id == "moon"


def test_stopword_query(ix, queries):
    q = queries[3]
    assert q.terms == []
    for mode in MODES:
        for level in LEVELS:
            r = rank_level(ix.backend, LEVELS.index(level), q, mode)
            assert len(r.ids) == ix.snapshot.n_chunks(LEVELS.index(level))
            if mode != "dense":
                assert not r.bm25.any()
        check_hits(ix, ix.search(q, budget=64, mode=mode).hits, 64)


def test_budget_is_a_maximum_not_a_target(ix, queries, monkeypatch):
    """With the relevance floor, a huge budget returns the relevant text, not everything."""
    monkeypatch.setattr(mograg.retrieval.prune, "FLOOR", 0.5)
    snap = ix.snapshot
    res = ix.search(queries[1], budget=100_000, level=64, mode="dense")
    check_hits(ix, res.hits, 100_000)
    assert 0 < res.n_tokens < int(snap.atoms["n_tokens"].sum())
    assert res.hits[0].doc_id == "coffee"


def test_answers_come_from_the_right_document(ix, queries):
    for q, want in zip(queries[:3], ["moon", "coffee", "rivers"], strict=True):
        for mode in MODES:
            for level in LEVELS[:3]:
                hits = ix.search(q, budget=64, level=level, mode=mode).hits
                assert hits[0].doc_id == want, (q.text, mode, level)
    hit = ix.search(queries[0], budget=20, level=8, mode="bm25").hits[0]
    assert "Armstrong" in hit.text


def test_huge_budget_returns_whole_corpus_once(ix, queries):
    snap = ix.snapshot
    res = ix.search(queries[1], budget=100_000, level=64, mode="dense")
    check_hits(ix, res.hits, 100_000)
    assert res.n_tokens == int(snap.atoms["n_tokens"].sum())
    assert sorted(h.doc_id for h in res.hits) == sorted(TEXTS)  # one merged span per doc
    for h in res.hits:
        assert h.text == TEXTS[h.doc_id].strip()


def test_rankings_sorted_and_unique(ix, queries):
    snap = ix.snapshot
    for q in queries:
        for j in range(len(LEVELS)):
            for mode in MODES:
                r = rank_level(ix.backend, j, q, mode, n=5)
                assert len(r.ids) == min(5, snap.n_chunks(j))
                assert len(set(r.ids.tolist())) == len(r.ids)
                assert np.all(np.diff(r.scores) <= 1e-7)
            dense = rank_level(ix.backend, j, q, "dense", n=3)
            full = snap.dense_scores(j, q.vector)
            assert np.allclose(dense.scores, np.sort(full)[::-1][:3], atol=1e-6)


def test_adjacent_picks_are_merged(ix, queries):
    snap = ix.snapshot
    lv = snap.levels[0]
    moon = snap.doc_index["moon"]
    ids = np.flatnonzero(snap.atoms["doc"][lv["first_atom"]] == moon)
    c = int(ids[0])
    # take chunk c+1 first, then c: one span from chunk c's start to chunk c+1's end
    picks = [Pick(0, c + 1, 0.9), Pick(0, c, 0.5)]
    hits = assemble(snap, queries[0], picks, budget=1000)
    assert len(hits) == 1
    _, s0, _ = snap.chunk_span(0, c)
    _, _, e1 = snap.chunk_span(0, c + 1)
    assert (hits[0].start, hits[0].end) == (s0, e1)
    assert hits[0].score == pytest.approx(0.9)
    assert hits[0].n_tokens == int(lv["n_tokens"][c] + lv["n_tokens"][c + 1])
    # a gap between two chunks keeps them apart
    hits = assemble(snap, queries[0], [Pick(0, c, 0.5), Pick(0, c + 2, 0.9)], budget=1000)
    assert [h.score for h in hits] == pytest.approx([0.9, 0.5])


def test_overlapping_picks_never_repeat_sentences(ix, queries):
    snap = ix.snapshot
    parent = int(snap.levels[0]["parent"][0])
    # child first, then its parent, then the parent's parent: each sentence once
    picks = [Pick(0, 0, 1.0), Pick(1, parent, 0.8),
             Pick(2, int(snap.levels[1]["parent"][parent]), 0.6)]
    hits = assemble(snap, queries[0], picks, budget=1000)
    check_hits(ix, hits, 1000)
    top = snap.levels[2][int(snap.levels[1]["parent"][parent])]
    assert sum(h.n_tokens for h in hits) == int(top["n_tokens"])


def test_mix_picks_uses_highest_weighted_level(ix, queries):
    snap = ix.snapshot
    rankings = ix.rank(queries[0])
    for best in range(len(LEVELS)):
        w = np.full(len(LEVELS), 0.1)
        w[best] = 0.7
        picks = mix_picks(snap, rankings, w)
        assert picks and all(p.level == best for p in picks)
        chunks = [p.chunk for p in picks]
        assert len(set(chunks)) == len(chunks)
        assert [p.score for p in picks] == sorted((p.score for p in picks), reverse=True)


def test_search_is_deterministic(ix):
    a = ix.search(QUERIES[2], budget=64, strategy="blend").to_dict()
    b = ix.search(QUERIES[2], budget=64, strategy="blend").to_dict()
    assert a == b


def test_isolated_fragments_are_skipped(tmp_path, shared_embedder):
    long_sentence = ("The committee reviewed every proposal submitted during the spring session "
                     "and then compared the costs, the schedules, the risks and the expected "
                     "benefits of each one before voting on the final list of projects today.")
    index = Index.create(tmp_path / "ix", levels=[32, 64])
    index.add([Document("long", "A first short sentence opens the text. " + long_sentence),
               Document("tiny", "Penguins swim.")])
    snap = index.snapshot
    q = index.encode_queries(["projects today"])[0]
    lv = snap.levels[0]
    docs = snap.atoms["doc"][lv["first_atom"]]
    long_chunks = np.flatnonzero(docs == snap.doc_index["long"]).tolist()
    tail = next(c for c in long_chunks if lv["n_tokens"][c] < 8)  # the cut sentence's tail
    head = tail - 1
    # alone, the few-token tail is not worth a place in the context
    assert assemble(snap, q, [Pick(0, tail, 1.0)], budget=100) == []
    # next to its sentence's first part it completes the span
    hits = assemble(snap, q, [Pick(0, head, 1.0), Pick(0, tail, 0.9)], budget=100)
    assert len(hits) == 1 and hits[0].text == long_sentence
    # and a whole short document is still retrievable
    tiny = int(np.flatnonzero(docs == snap.doc_index["tiny"])[0])
    hits = assemble(snap, q, [Pick(0, tiny, 1.0)], budget=100)
    assert [h.text for h in hits] == ["Penguins swim."]
