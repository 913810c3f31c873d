"""A routed search's lookups give what reading the index again gives (issue 14, routed
search latency): the query's similarities kept from the one-pass ranking, the chunk
table behind span features and the filler, every level's graph walk at once, and span
features computed for all levels together."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_route_parity import QUESTIONS, linked_pages

from mograg.graph.walk import graph_picks
from mograg.graph.walk_levels import graph_picks_levels
from mograg.index.core import Index
from mograg.retrieval.chunk_table import chunk_table
from mograg.retrieval.rank import BudgetFiller, positions_in, rank_level
from mograg.retrieval.routing import (
    granularity_lists,
    granularity_names,
    granularity_picks,
    named_by_level,
)
from mograg.retrieval.spans import (
    AGREE_TOP,
    FINE_TOP,
    SPAN_FEATURES,
    candidate_features,
    design,
    mean_std,
)
from mograg.store.query_sims import QuerySims, query_sims
from mograg.types import Pick


@pytest.fixture(scope="module", params=[1, 2], ids=["r1", "r2"])
def gix(request, tmp_path_factory, shared_embedder) -> Index:
    return linked_pages(tmp_path_factory.mktemp("tables") / "ix", request.param)


def test_every_levels_graph_walk_at_once_equals_each_levels_walk(gix):
    names = granularity_names(gix)
    assert any(n.startswith("graph:") for n in names)
    linked = 0
    for query in gix.encode_queries([*QUESTIONS, "Coffee Trade and Great Rivers"]):
        for mode in ("hybrid", "dense", "bm25"):
            rankings = gix.rank(query, mode, n=12)
            named = named_by_level(gix, query)
            for limits in ([None] * len(names), [3] * len(names),
                           [None if g % 3 else g % 5 for g in range(len(names))]):
                for known in (named, None):
                    each = [granularity_picks(gix, query, rankings, n, known, lim)
                            for n, lim in zip(names, limits, strict=True)]
                    assert granularity_lists(gix, query, rankings, names, known, limits) == each
                    linked += sum(p.linked for picks in each for p in picks)
            radius = max(int(n.rsplit("=", 1)[1]) for n in names if n.startswith("graph:"))
            walked = graph_picks_levels(gix.snapshot, query, rankings, radius)
            assert walked == [graph_picks(gix.snapshot, query, r, radius) for r in rankings]
    assert linked > 50  # named seeds and links were walked


def test_chunk_table_holds_each_chunks_facts(gix):
    snap = gix.snapshot
    tab = chunk_table(snap)
    tokens = snap.atoms["n_tokens"].astype(np.int64)
    fine = snap.levels[0]
    fine_cost = [int(tokens[a:b + 1].sum()) for a, b in zip(
        fine["first_atom"].tolist(), fine["last_atom"].tolist(), strict=True)]
    for j, lv in enumerate(snap.levels):
        for c in range(len(lv)):
            row = int(tab.rows(np.array([j]), np.array([c]))[0])
            lo, hi = snap.finest_range(j, c)
            a, b = int(lv["first_atom"][c]), int(lv["last_atom"][c])
            doc = int(snap.atoms["doc"][a])
            assert (tab.finest_lo[row], tab.finest_hi[row], tab.doc[row]) == (lo, hi, doc)
            fill = tab.fill(np.array([row]), np.array([j]))[0]
            assert fill == lv["n_tokens"][c] / max(snap.sizes[j], 1)
            assert tab.lead[row] == (c == snap.doc_bounds(j)[doc])
            assert tab.cheapest_piece[row] == tokens[a:b + 1].min()
            assert tab.cheapest_finest[row] == min(fine_cost[lo:hi])


def test_similarities_kept_from_the_ranking_equal_the_vectors(gix):
    snap = gix.snapshot
    query = gix.encode_queries(["Which river carries the most water?"])[0]
    rankings = gix.rank(query)
    known = query_sims(snap, query.vector, rankings)
    alone = QuerySims(snap, query.vector)
    assert [known.knows(j) for j in range(len(rankings))] == [True] * len(rankings)
    # a level ranked alone computes only its top: its ranking keeps no similarities
    assert rank_level(gix.backend, 1, query).similarities is None
    for j in range(len(rankings)):
        ids = np.arange(snap.n_chunks(j))[::-2]
        read = snap.chunk_vectors(j, ids) @ query.vector
        assert alone.of(j, ids).tolist() == read.tolist()  # bit for bit, as before
        assert alone.of(j, ids, rowwise=True).tolist() == np.einsum(
            "ij,j->i", snap.chunk_vectors(j, ids), query.vector).tolist()
        np.testing.assert_allclose(known.of(j, ids), read, rtol=0, atol=2e-6)
        assert known.of(j, ids[:0]).shape == alone.of(j, ids[:0]).shape == (0,)


@given(st.lists(st.floats(-3, 3, width=32), min_size=1, max_size=300))
def test_mean_std_is_numpys_bit_for_bit(values):
    v = np.array(values, np.float64)
    assert mean_std(v.copy()) == (float(v.mean()), float(v.std()))


def _features_level_by_level(snap, qvec, rankings, levels, chunks, first, rel, named):
    """The span features as computed level by level before they were vectorised."""
    n_lv, n = len(rankings), len(levels)
    x = np.zeros((n, len(SPAN_FEATURES)))
    anc = snap.ancestors
    fine_top = rankings[0].ids[:FINE_TOP]
    doc_rank: dict[int, int] = {}
    for d in snap.atoms["doc"][snap.levels[0]["first_atom"][rankings[0].ids]].tolist():
        doc_rank.setdefault(int(d), len(doc_rank))
    lo, hi, docs = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    fill, lead, sims = np.zeros(n), np.zeros(n), np.zeros(n)
    top_lo = np.full((n_lv, AGREE_TOP), -1, np.int64)
    top_hi = np.full((n_lv, AGREE_TOP), -1, np.int64)
    at = np.searchsorted(levels, np.arange(n_lv + 1))
    known = query_sims(snap, qvec, rankings)
    for j, rk in enumerate(rankings):
        t = rk.ids[:AGREE_TOP]
        top_lo[j, : len(t)] = np.searchsorted(anc[j], t, "left")
        top_hi[j, : len(t)] = np.searchsorted(anc[j], t, "right")
        if at[j] == at[j + 1]:
            continue
        m = slice(int(at[j]), int(at[j + 1]))
        c = chunks[m]
        lo[m], hi[m] = np.searchsorted(anc[j], c, "left"), np.searchsorted(anc[j], c, "right")
        table = snap.levels[j][c]
        docs[m] = snap.atoms["doc"][table["first_atom"]]
        fill[m] = table["n_tokens"] / max(snap.sizes[j], 1)
        lead[m] = c == snap.doc_bounds(j)[docs[m]]
        sims[m] = known.of(j, c)
        d = rk.dense.astype(np.float64)
        mean = float(d.mean()) if len(d) else 0.0
        sd = (float(d.std()) or 1.0) if len(d) else 1.0
        x[m, 2] = (sims[m] - mean) / sd
        x[m, 3] = sims[m] - (float(d.max()) if len(d) else 0.0)
        fmax = float(rk.scores.max()) if len(rk.scores) else 0.0
        bmax = float(rk.bm25.max()) if len(rk.bm25) else 0.0
        rows = np.arange(m.start, m.stop)
        r, ranked = positions_in(rk.ids, c)
        x[rows, 5] = ranked
        x[rows, 0] = np.log1p(np.where(ranked, r, len(rk.ids)))
        hit = rows[ranked]
        if fmax > 0:
            x[hit, 1] = rk.scores[r[ranked]] / fmax
        if bmax > 0 and len(rk.bm25):
            x[hit, 4] = rk.bm25[r[ranked]] / bmax
    agree = ((top_lo[None] < hi[:, None, None]) & (lo[:, None, None] < top_hi[None])).any(2)
    agree[np.arange(n), levels] = False
    x[:, 6] = 1.0 - x[:, 5]
    keys = zip(levels.tolist(), chunks.tolist(), strict=True)
    x[:, 7] = [float(bool(named) and k in named) for k in keys]
    x[:, 8] = agree.sum(axis=1) / max(n_lv - 1, 1)
    if len(fine_top):
        x[:, 9] = ((fine_top[None] >= lo[:, None]) & (fine_top[None] < hi[:, None])).mean(1)
    x[:, 10], x[:, 12] = fill, lead
    x[:, 11] = np.log1p([doc_rank.get(int(d), len(doc_rank)) for d in docs.tolist()])
    order = first.astype(np.float64)
    x[:, 13], x[:, 14], x[:, 15] = np.log1p(order), rel, x[:, 6] / (1.0 + order)
    return design(x, levels, n_lv, None)


def test_span_features_of_all_levels_at_once_equal_level_by_level(gix):
    from mograg.retrieval.spans import _distinct_candidates

    snap = gix.snapshot
    names = granularity_names(gix)
    checked = 0
    for query in gix.encode_queries([*QUESTIONS, "Coffee Trade and Great Rivers"]):
        for mode in ("hybrid", "dense", "bm25"):
            rankings = gix.rank(query, mode, n=12)
            named = named_by_level(gix, query) or []
            pairs = {(j, c) for j, seeds in enumerate(named) for c in seeds}
            per = granularity_lists(gix, query, rankings, names, named or None)
            cands = candidate_features(snap, query.vector, rankings, per, pairs)
            levels, chunks, first, rel, _ = _distinct_candidates(per)
            want = _features_level_by_level(snap, query.vector, rankings, levels, chunks,
                                            first, rel, pairs)
            assert cands.x.tobytes() == want.tobytes()  # bit for bit
            checked += len(levels)
    assert checked > 500


def test_filler_shortcuts_answer_as_the_sentences_do(gix):
    snap = gix.snapshot
    query = gix.encode_queries(["badger beetles spring"])[0]
    tokens = snap.atoms["n_tokens"].astype(np.int64)
    for budget in (3, 17, 40, 90):
        filler = BudgetFiller(snap, query, budget)
        for j in range(1, len(snap.levels)):
            for c in range(snap.n_chunks(j)):
                pick = Pick(j, c, 1.0)
                new, cost = filler._new_atoms(pick)
                assert cost == int(tokens[new].sum())
                assert filler._cheapest(pick, new) == int(tokens[new].min())
                lo, hi = snap.finest_range(j, c)
                fine = snap.levels[0]
                each = [int(tokens[a:b + 1].sum()) for a, b in zip(
                    fine["first_atom"][lo:hi].tolist(), fine["last_atom"][lo:hi].tolist(),
                    strict=True)]
                assert filler._part_fits(pick, new) == (min(each) <= budget)
