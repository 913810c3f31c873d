"""Relevance floor and near-duplicate folding of candidates (mograg.retrieval.prune)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import field_notes
from mograg.index.core import Index
from mograg.retrieval import prune
from mograg.retrieval.rank import assemble, picks_from_ranking, rank_level
from mograg.types import Document

SHARED = ("Net revenue retention was 158 percent and remained strong across our largest "
          "customers, while product gross margin improved to 75 percent this quarter. "
          "We added 297 customers with trailing twelve-month product revenue above one "
          "million dollars, and remaining performance obligations reached 3.7 billion. "
          "Consumption patterns were healthy in financial services, retail and technology, "
          "and our partners delivered a growing share of new workloads in every region.")


@pytest.fixture(scope="module")
def ix(tmp_path_factory: pytest.TempPathFactory) -> Index:
    docs = [
        Document("q1.txt", f"{field_notes(1, 10)}\n\n{SHARED}\n\n{field_notes(2, 10)}"),
        Document("q2.txt", f"{field_notes(3, 10)}\n\n{SHARED}\n\n{field_notes(4, 10)}"),
        Document("other.txt", field_notes(5, 40)),
    ]
    index = Index.create(tmp_path_factory.mktemp("ix") / "ix", context=False)
    index.add(docs)
    return index


def test_near_duplicate_of_another_document_is_folded(ix: Index) -> None:
    q = ix.encode_queries(["What was net revenue retention?"])[0]
    snap = ix.snapshot
    j = ix.level_index(64)
    picks = picks_from_ranking(rank_level(ix.backend, j, q))
    stats: dict[str, int] = {}
    assemble(snap, q, picks, budget=256, stats=stats)
    assert stats["folded"] >= 1  # chunks inside the other quarter's copy were folded


def test_floor_leaves_the_budget_partly_empty(ix: Index) -> None:
    q = ix.encode_queries(["What was net revenue retention?"])[0]
    snap = ix.snapshot
    picks = picks_from_ranking(rank_level(ix.backend, 0, q, n=10_000))
    stats: dict[str, int] = {}
    hits = assemble(snap, q, picks, budget=100_000, stats=stats)
    assert stats["below_floor"] > 0
    assert sum(h.n_tokens for h in hits) < int(snap.atoms["n_tokens"].sum())


def test_graph_linked_candidates_are_not_cut_by_the_floor(ix: Index) -> None:
    from dataclasses import replace

    q = ix.encode_queries(["What was net revenue retention?"])[0]
    snap = ix.snapshot
    picks = picks_from_ranking(rank_level(ix.backend, 0, q, n=10_000))
    below: dict[str, int] = {}
    kept = list(prune.clean_picks(snap, q, picks, below))
    assert below["below_floor"] > 0
    # the same candidates reached through the graph (a bridge is unlike the question)
    linked = [replace(p, linked=True) for p in picks]
    stats: dict[str, int] = {}
    kept_linked = list(prune.clean_picks(snap, q, linked, stats))
    assert stats["below_floor"] == 0 and len(kept_linked) > len(kept)


@given(st.text(alphabet="ab c", max_size=40), st.text(alphabet="ab c", max_size=40))
def test_near_duplicate_is_symmetric(a: str, b: str) -> None:
    sa, sb = prune.shingles(a), prune.shingles(b)
    assert prune._near_duplicate(sa, sb) == prune._near_duplicate(sb, sa)
    if sa:
        assert prune._near_duplicate(sa, sa)


def test_search_reports_folded(ix: Index, tmp_path: Path) -> None:
    res = ix.search("What was net revenue retention?", budget=256, level=64)
    assert res.routing.get("folded", 0) >= 1


def _clean_all_pairs(snap, query, picks, useful=None):  # the reference
    """The candidates clean_picks keeps, comparing each with every kept one (``useful``:
    candidates it rejects are skipped first, neither compared nor kept)."""
    sims = np.array([snap.chunk_vectors(p.level, np.array([p.chunk]))[0] @ query.vector
                     for p in picks], np.float32)
    best: dict[int, float] = {}
    for p, s in zip(picks, sims.tolist(), strict=True):
        best[p.level] = max(best.get(p.level, s), s)
    kept: list = []
    for p, s in zip(picks, sims.tolist(), strict=True):
        if best[p.level] > 0 and s < prune.FLOOR * best[p.level] and not p.linked:
            continue
        if useful is not None and not useful(p):
            continue
        doc, start, end = snap.chunk_span(p.level, p.chunk)
        sh = prune.shingles(snap.text(doc)[start:end])
        if any(d != doc and prune._near_duplicate(sh, o) for d, o in kept):
            continue
        kept.append((doc, sh))
        yield p


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 700), st.booleans())
def test_indexed_folding_and_early_stop_change_no_hit(ix: Index, seed: int, budget: int,
                                                      link: bool) -> None:
    """Folding through the shingle index and stopping once nothing more fits give the
    hits of comparing every pair (of the candidates that could still add text) and
    offering every candidate."""
    from dataclasses import replace

    import numpy as np

    from mograg.retrieval.rank import BudgetFiller

    rng = np.random.default_rng(seed)
    q = ix.encode_queries(["What was net revenue retention?", "field notes weather",
                           "customers above one million dollars"])[seed % 3]
    snap = ix.snapshot
    picks = [p for j in range(len(ix.levels))
             for p in picks_from_ranking(rank_level(ix.backend, j, q, n=30))]
    picks = [picks[i] for i in rng.permutation(len(picks))]
    picks += picks[: len(picks) // 3]  # granularities repeat each other's candidates
    if link:
        picks = [replace(p, linked=bool(rng.random() < 0.3)) for p in picks]
    ref = BudgetFiller(snap, q, budget)
    for p in _clean_all_pairs(snap, q, picks, ref.could_take):  # lazy: asks as it fills
        ref.offer(p)
        if ref.remaining <= 0:
            break
    assert list(prune.clean_picks(snap, q, picks)) == list(_clean_all_pairs(snap, q, picks))
    assert assemble(snap, q, picks, budget) == ref.hits(snap.sizes)


def _duplicate_pair(snap):
    """Chunks of q1 and q2 that nearly repeat each other (the shared paragraph)."""
    for j in range(len(snap.sizes)):
        texts = snap.level_texts(j)
        spans = [snap.chunk_span(j, c) for c in range(len(texts))]
        q1 = [c for c, sp in enumerate(spans) if snap.doc_ids[sp[0]] == "q1.txt"]
        q2 = [c for c, sp in enumerate(spans) if snap.doc_ids[sp[0]] == "q2.txt"]
        for a in q1:
            for b in q2:
                if prune._near_duplicate(prune.shingles(texts[a]), prune.shingles(texts[b])):
                    return j, a, b
    raise AssertionError("no near-duplicate pair")


def test_candidates_that_could_add_nothing_are_neither_compared_nor_kept(ix: Index) -> None:
    """What a context holds decides what repeats it: a candidate the budget could not
    take is not kept for comparisons, so another document's copy is not folded."""
    from mograg.types import Pick

    snap = ix.snapshot
    q = ix.encode_queries(["What was net revenue retention?"])[0]
    j, a, b = _duplicate_pair(snap)
    picks = [Pick(j, a, 1.0, linked=True), Pick(j, b, 0.5, linked=True)]
    stats: dict[str, int] = {}
    assert list(prune.clean_picks(snap, q, picks, stats)) == picks[:1]
    assert stats["folded"] == 1
    stats = {}
    kept = [p for _, p in prune.clean_indexed(snap, q, picks, stats, lambda p: p.chunk != a)]
    assert kept == picks[1:] and stats["folded"] == 0


def test_the_filler_knows_what_it_could_not_take(ix: Index) -> None:
    from mograg.retrieval.rank import BudgetFiller
    from mograg.types import Pick

    snap = ix.snapshot
    q = ix.encode_queries(["What was net revenue retention?"])[0]
    tokens = snap.levels[0]["n_tokens"]
    small, big = int(np.argmin(tokens)), int(np.argmax(tokens))
    filler = BudgetFiller(snap, q, int(tokens[small]) + 1)
    assert not filler.could_take(Pick(0, big, 1.0))  # a finest chunk is not split
    assert filler.could_take(Pick(0, small, 1.0))
    filler.offer(Pick(0, small, 1.0))
    assert filler.remaining == 1
    assert not filler.could_take(Pick(0, small, 1.0))  # taken already
    coarse = int(snap.ancestors[len(snap.sizes) - 1][small])
    assert not filler.could_take(Pick(len(snap.sizes) - 1, coarse, 1.0))
