"""The routed search's shortcuts give what the plain computation gives: truncated
granularity lists, title matches and named seeds computed once per search, vectorised
fusion, blending and folding (issue 14, routed search latency)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import FACTS, TOPICS, field_notes
from mograg.embed.base import calibrate_cosine
from mograg.graph.build import GraphSettings
from mograg.graph.titles import TitleMatcher
from mograg.graph.walk import graph_picks, lift_seeds, named_seeds
from mograg.index.core import Index
from mograg.retrieval import prune
from mograg.retrieval.rank import (
    RRF_K,
    assemble,
    positions_in,
    rank_level,
    rank_levels,
    rrf_fuse,
)
from mograg.retrieval.routers import load_router
from mograg.retrieval.routing import (
    blend_picks,
    granularity_names,
    granularity_picks,
    named_by_level,
)
from mograg.retrieval.spans import HEDGE_SHARE, PER_GRANULARITY, span_selection
from mograg.types import Document, Pick

# pages that name each other by title (graph links), long enough for every default level
PAGES = {
    "Lunar Exploration": FACTS["moon"] + " Coffee Trade is unrelated. " + field_notes(1, 40),
    "Coffee Trade": FACTS["coffee"] + " See Great Rivers for transport. " + field_notes(2, 40),
    "Great Rivers": FACTS["rivers"] + " Lunar Exploration changed tides research. "
    + field_notes(3, 40),
    **{t.title(): f"{text} {field_notes(9 + i, 25)}" for i, (t, text) in enumerate(TOPICS.items())},
}
QUESTIONS = [
    "Who first walked on the Lunar Exploration target?", "how much caffeine is in a cup",
    "Which river carries the most water?", "what buried Pompeii", "In winter what does the "
    "otter of the marsh eat?", "Which chess piece is strongest?", "badger beetles spring",
]


def linked_pages(path, radius: int = 1) -> Index:
    """An index of PAGES (linked by their titles) with a MoGG graph of ``radius`` hops."""
    ix = Index.create(path, graph=GraphSettings(max_radius=radius))
    ix.add([Document(re.sub(r"\W+", "-", t.lower()), text, {"title": t})
            for t, text in PAGES.items()])
    return ix


@pytest.fixture(scope="module")
def rix(tmp_path_factory, shared_embedder) -> Index:
    return linked_pages(tmp_path_factory.mktemp("parity") / "ix")


def test_truncated_granularities_are_the_full_lists_first_picks(rix):
    names = granularity_names(rix)
    assert any(n.startswith("graph:") for n in names)
    for query in rix.encode_queries(QUESTIONS):
        for mode in ("hybrid", "dense", "bm25"):
            rankings = rix.rank(query, mode)
            named = named_by_level(rix, query)
            for name in names:
                full = granularity_picks(rix, query, rankings, name)
                for k in (1, 3, PER_GRANULARITY):
                    assert granularity_picks(rix, query, rankings, name, named, k) == full[:k]
                assert granularity_picks(rix, query, rankings, name, named) == full


def test_routed_spans_search_equals_the_full_computation(rix):
    """Same hits and routing as span selection over every granularity's whole list."""
    names = granularity_names(rix)
    snap = rix.snapshot
    for query in rix.encode_queries(QUESTIONS):
        for budget in (24, 256, 1024):
            got = rix.search(query, budget=budget)
            assert got.routing["strategy"] == "spans"
            model = load_router(rix, None, budget)
            rankings = rix.rank(query)
            weights = model.weights(rix, query, rankings, names)
            per = [granularity_picks(rix, query, rankings, n) for n in names]
            ordered = span_selection(rix, query, rankings, per, model.span_model)
            assert ordered is not None
            best = int(np.argmax(weights))
            mixed = blend_picks(snap, [ordered, per[best]],
                                np.array([1.0 - HEDGE_SHARE, HEDGE_SHARE]))
            want = assemble(snap, query, mixed, budget)
            assert got.hits == want
            assert got.routing["weights"] == {n: round(float(w), 4)
                                              for n, w in zip(names, weights, strict=True)}


def test_title_matches_are_remembered_per_question():
    m = TitleMatcher([(0, "Shirley Temple"), (1, "Kiss and Tell (1945 film)")])
    for q in ["Did Shirley Temple star in Kiss and Tell?", "did shirley temple act",
              "Did shirley temple act?"]:
        want = m.find(q, ignore_case=q == q.lower())
        assert m.named_in_question(q) == want
        assert m.named_in_question(q) == want  # the remembered answer, a fresh list
        m.named_in_question(q).append(99)
        assert m.named_in_question(q) == want


ids = st.lists(st.integers(0, 60), unique=True, max_size=50)


@given(ids, ids, st.data())
def test_rrf_fusion_matches_the_dict_reference(dense_ids, bm25_ids, data):
    scores = data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.25, 3.0]), min_size=len(bm25_ids),
                                max_size=len(bm25_ids)))
    fused: dict[int, float] = {}
    for r, i in enumerate(dense_ids):
        fused[i] = 1.0 / (RRF_K + r + 1)
    for r, (i, b) in enumerate(zip(bm25_ids, scores, strict=True)):
        if b > 0:
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + r + 1)
    cand, vals = rrf_fuse(np.array(dense_ids, np.int64), np.array(bm25_ids, np.int64),
                          np.array(scores, np.float32))
    assert cand.tolist() == list(fused)  # the same order: ties keep it
    assert vals.tolist() == list(fused.values())  # bit for bit


@given(ids, st.lists(st.integers(0, 70), max_size=40))
def test_positions_match_a_lookup(values, keys):
    where = {v: k for k, v in enumerate(values)}
    pos, found = positions_in(np.array(values, np.int64), np.array(keys, np.int64))
    assert found.tolist() == [k in where for k in keys]
    assert [int(p) for p, f in zip(pos, found, strict=True) if f] == [where[k] for k in keys
                                                                       if k in where]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60,
          deadline=None)
@given(st.data())
def test_blending_matches_the_tuple_sort(rix, data):
    snap = rix.snapshot
    n_lv = len(rix.levels)
    n_g = data.draw(st.integers(1, 5))
    per = [[Pick(j, c, 1.0) for j, c in data.draw(st.lists(
        st.integers(0, n_lv - 1).flatmap(
            lambda j: st.tuples(st.just(j), st.integers(0, snap.n_chunks(j) - 1))),
        max_size=25))] for _ in range(n_g)]
    weights = np.array(data.draw(st.lists(st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.25, 0.6]),
                                          min_size=n_g, max_size=n_g)))
    keep = [g for g in range(n_g) if weights[g] >= 0.1] or [int(np.argmax(weights))]
    w = weights[keep] / weights[keep].sum()
    keyed = []
    for wi, g in zip(w.tolist(), keep, strict=True):
        used = 0
        for k, p in enumerate(per[g]):
            keyed.append((used / max(wi, 1e-9), -wi, k, p))
            used += int(snap.levels[p.level][p.chunk]["n_tokens"])
    keyed.sort(key=lambda t: (t[0], t[1], t[2]))
    assert blend_picks(snap, per, weights) == [p for *_, p in keyed]


shingle_sets = st.sets(st.tuples(st.sampled_from("abcde"), st.sampled_from("xyz")), max_size=12)


@given(st.lists(st.tuples(st.integers(0, 3), shingle_sets), max_size=8), st.integers(0, 3),
       shingle_sets)
def test_folding_matches_comparing_with_every_kept_span(kept, doc, new):
    k = prune._Kept()
    for d, sh in kept:
        k.add(d, sh)
    want = any(d != doc and prune._near_duplicate(new, sh) for d, sh in kept)
    assert k.repeats(doc, new) == want


@given(st.text(alphabet="ab cD,.\u00e9", max_size=60))
def test_shingles_are_the_word_four_grams(text):
    words = re.findall(r"\w+", text.lower())
    want = ({tuple(words[i:i + 4]) for i in range(len(words) - 3)} if len(words) >= 4
            else ({tuple(words)} if words else set()))
    assert prune.shingles(text) == want


def test_one_pass_dense_similarities_equal_each_levels_own(rix, tmp_path, shared_embedder):
    """Pooled levels' similarities from the level below's: the same up to float32 rounding;
    an index whose coarse vectors are embedded is read level by level, bit for bit."""
    snap = rix.snapshot
    every = list(range(len(rix.levels)))
    embedded = Index.create(tmp_path / "embedded", level_vectors="embed")
    embedded.add([Document(f"d{i}", text) for i, text in enumerate(PAGES.values())])
    assert all(snap._pooled_norms(j) is not None for j in every[1:])  # derived, not read
    assert all(embedded.snapshot._pooled_norms(j) is None for j in every)
    def dense_levels(s, qvec):  # the one pass, calibrated as dense_scores is
        return {j: calibrate_cosine(v, s.cosine_floor)
                for j, v in s.similarity_levels(qvec, every).items()}

    for query in rix.encode_queries(QUESTIONS):
        one_pass = dense_levels(snap, query.vector)
        for j in every:
            alone = snap.dense_scores(j, query.vector)
            np.testing.assert_allclose(one_pass[j], alone, rtol=0, atol=2e-6)
            if j == 0:
                assert one_pass[j].tolist() == alone.tolist()
        own = dense_levels(embedded.snapshot, query.vector)
        for j in every:
            assert own[j].tolist() == embedded.snapshot.dense_scores(j, query.vector).tolist()
        # a level ranked alone reads its own vectors: a fixed granularity's search
        alone_rank = rank_levels(rix.backend, [2], query)[0]
        assert alone_rank.ids.tolist() == rank_level(rix.backend, 2, query).ids.tolist()
        assert alone_rank.dense.tolist() == rank_level(rix.backend, 2, query).dense.tolist()


def _graph_picks_loop(snap, query, ranking, radius):  # the walk seed by seed, as it was
    graph = snap.graph
    j = ranking.level
    top = float(ranking.scores.max()) if len(ranking.scores) else 1.0
    named = named_seeds(snap, graph, query, j)
    seeds = [(c, top) for c in named]
    seeds += list(zip(ranking.ids.tolist(), ranking.scores.tolist(), strict=True))
    lifted = lift_seeds(snap.ancestors[j], graph.adj, [c for c, _ in seeds], radius)
    cands = np.concatenate([c for c, _ in lifted]) if lifted else np.zeros(0, np.int64)
    flat = snap.chunk_vectors(j, cands) @ query.vector if len(cands) else np.zeros(0)
    bounds = np.cumsum([0] + [len(c) for c, _ in lifted])
    picks, placed = [], set()
    for k, ((c, score), (cand, weight)) in enumerate(zip(seeds, lifted, strict=True)):
        sim = flat[bounds[k]:bounds[k + 1]]
        if c not in placed:
            placed.add(c)
            picks.append(Pick(j, c, score, linked=c in named))
        fresh = [i for i, a in enumerate(cand.tolist()) if a not in placed]
        cand, weight, sim = cand[fresh], weight[fresh], sim[fresh]
        for i in np.lexsort((-sim, -weight)).tolist():
            placed.add(int(cand[i]))
            picks.append(Pick(j, int(cand[i]), score * float(weight[i]), linked=True))
    return picks


def test_graph_walk_of_all_seeds_at_once_equals_the_seed_by_seed_loop(rix):
    snap = rix.snapshot
    linked = 0
    for query in rix.encode_queries([*QUESTIONS, "Coffee Trade and Great Rivers"]):
        for mode in ("hybrid", "dense", "bm25"):
            for ranking in rix.rank(query, mode, n=8):
                want = _graph_picks_loop(snap, query, ranking, 1)
                assert graph_picks(snap, query, ranking, 1) == want
                linked += sum(p.linked for p in want)
    assert linked > 20  # the graph was walked, named seeds and links


def test_finest_ranges_from_the_cached_bounds(rix):
    snap = rix.snapshot
    for j in range(len(rix.levels)):
        anc = snap.ancestors[j]
        for c in [*range(snap.n_chunks(j)), snap.n_chunks(j), -1]:
            want = int(np.searchsorted(anc, c, "left")), int(np.searchsorted(anc, c, "right"))
            assert snap.finest_range(j, c) == want


@given(st.lists(st.floats(-3, 3, width=32), min_size=2, max_size=80))
def test_score_shape_is_numpys_mean_and_std(values):
    from mograg.retrieval.signals import TOP, _z

    v = np.array(values, np.float32)
    s = np.sort(v.astype(np.float64))[::-1]
    sd = float(s.std()) or 1.0
    k = min(TOP, len(s)) - 1
    want = (float((s[0] - s.mean()) / sd), float((s[0] - s[1]) / sd), float((s[0] - s[k]) / sd))
    assert _z(v) == want  # bit for bit


@given(st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0, 2.5]), st.floats(-1, 1, width=32)),
                min_size=3, max_size=60))
def test_rank_agreement_is_the_ranks_correlation(pairs):
    from mograg.retrieval.signals import _rank_agreement, _ranks

    b, a = (np.array(x, np.float32) for x in zip(*pairs, strict=True))
    got = _rank_agreement(a, b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert got == 0.0
    else:
        assert got == pytest.approx(float(np.corrcoef(_ranks(a), _ranks(b))[0, 1]), abs=1e-12)
