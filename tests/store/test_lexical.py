"""BM25 kept per segment: the same scores as one bm25s index, and writes that only count
the terms of what they add."""

from __future__ import annotations

import itertools
from unittest import mock

import bm25s
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import FACTS, TOPICS, field_notes
from mograg.index.core import Index
from mograg.index.migrate import upgrade
from mograg.store import lexical, lexical_top
from mograg.store.lexical import Bm25, TermPostings, is_current, segment_dir, tokenize
from mograg.types import Document

TEXTS = [*TOPICS.values(), *FACTS.values(), *field_notes(3, 40).split("\n\n")]
QUERIES = [
    "Who first walked on the Moon?",
    "cats purr content kittens hunt",
    "moon moon craters",  # a repeated term counts twice, as in bm25s
    "zzzunknown moon",  # a term no chunk has
    "the of and",  # stopwords only: no terms
]


def _bm25s_terms(texts):
    import Stemmer

    return bm25s.tokenize(list(texts), stopwords="en", stemmer=Stemmer.Stemmer("english"),
                          show_progress=False, return_ids=False)


def test_tokenize_equals_bm25s():
    texts = [*TEXTS, *QUERIES, "", "Ünïcode naïve café DÉJÀ-VU 3.14 x2 a_b", "The THE tHe"]
    assert tokenize(texts) == _bm25s_terms(texts)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=5))
def test_tokenize_equals_bm25s_on_any_text(texts):
    assert tokenize(texts) == _bm25s_terms(texts)


@pytest.mark.parametrize("cuts", [[], [5], [1, 7, 12]])
def test_scores_equal_one_bm25s_index(cuts):
    bounds = [0, *cuts, len(TEXTS)]
    parts = [TermPostings.from_texts(TEXTS[a:b]) for a, b in itertools.pairwise(bounds)]
    mine = Bm25(parts)
    ref = bm25s.BM25()
    ref.index(tokenize(TEXTS), show_progress=False)
    for q in QUERIES:
        terms = tokenize([q])[0]
        known = [t for t in terms if t in ref.vocab_dict]
        expected = ref.get_scores(known) if known else np.zeros(len(TEXTS))
        np.testing.assert_allclose(mine.scores(terms), expected, rtol=1e-5, atol=1e-5)
    assert mine.scores([]).shape == (len(TEXTS),)


def test_postings_round_trip(tmp_path):
    p = TermPostings.from_texts(["Rivers form deltas.", "", "Deltas of rivers, rivers."])
    assert p.lengths.tolist() == [3, 0, 3]  # "of" is a stopword
    rows, counts = p.postings("river")
    assert rows.tolist() == [0, 2] and counts.tolist() == [1, 2]
    assert len(p.postings("absent")[0]) == 0
    p.save(tmp_path / "p")
    q = TermPostings.load(tmp_path / "p")
    assert q.vocab.tolist() == p.vocab.tolist()
    assert q.postings("delta")[1].tolist() == [1, 1]
    empty = TermPostings.from_texts([])
    assert Bm25([empty]).scores(["river"]).shape == (0,)


def _fresh_scores(ix: Index, j: int, terms: list[str]) -> np.ndarray:
    return Bm25([TermPostings.from_texts(ix.snapshot.level_texts(j))]).scores(terms)


def test_writes_reuse_unchanged_segments(tmp_path, shared_embedder):
    ix = Index.create(tmp_path / "ix", levels=[16, 64])
    ix.add([Document(k, v) for k, v in TOPICS.items()])
    first = ix.manifest["segments"][0]
    lex0 = ix.root / "lexical" / ix.manifest["derived"]["lexical"]
    inode = (segment_dir(lex0, first, 0) / "rows.npy").stat().st_ino
    ix.add([Document(k, v) for k, v in FACTS.items()])
    lex1 = ix.root / "lexical" / ix.manifest["derived"]["lexical"]
    assert lex1 != lex0 and is_current(lex1) and not lex0.exists()  # old one collected
    # the first segment's postings were linked, not recounted; the new one was counted
    assert (segment_dir(lex1, first, 0) / "rows.npy").stat().st_ino == inode
    assert len(ix.manifest["segments"]) == 2
    terms = tokenize(["cats and the Moon landing"])[0]
    for j in range(2):
        got = ix.snapshot.lexical[j].scores(terms)
        np.testing.assert_allclose(got, _fresh_scores(ix, j, terms), rtol=1e-6)
    ix.delete(["cats", "moon"])  # both segments rewritten
    for j in range(2):
        got = ix.snapshot.lexical[j].scores(terms)
        np.testing.assert_allclose(got, _fresh_scores(ix, j, terms), rtol=1e-6)
    hits = ix.search("Moon landing astronauts", mode="bm25", level=64).hits
    assert "moon" not in {h.doc_id for h in hits}


def test_older_bm25_directories_are_read_and_upgraded(tmp_path, shared_embedder):
    ix = Index.create(tmp_path / "ix", levels=[16, 64])
    ix.add([Document(k, v) for k, v in FACTS.items()])
    lex = ix.root / "lexical" / ix.manifest["derived"]["lexical"]
    (lex / "format").unlink()  # as if written by an older mograg
    old = Index.open(ix.root)
    terms = tokenize(["Moon craters"])[0]
    np.testing.assert_allclose(old.snapshot.lexical[1].scores(terms),
                               _fresh_scores(old, 1, terms), rtol=1e-6)
    upgrade(old)
    assert is_current(old.root / "lexical" / old.manifest["derived"]["lexical"])
    assert old.manifest["segments"] == ix.manifest["segments"]
    np.testing.assert_allclose(Index.open(ix.root).snapshot.lexical[1].scores(terms),
                               _fresh_scores(old, 1, terms), rtol=1e-6)


WORDS = ["river", "delta", "moon", "crater", "coffee", "cat", "kitten", "volcano", "lava", "ash"]


def _in_parts(docs: list[str], cuts: list[int]) -> Bm25:
    """BM25 over ``docs`` split into parts (segments) at ``cuts``."""
    bounds = sorted({0, len(docs), *(min(c, len(docs)) for c in cuts)})
    return Bm25([TermPostings.from_texts(docs[a:b]) for a, b in itertools.pairwise(bounds)])


@settings(max_examples=40, deadline=None)
@given(
    docs=st.lists(st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join), min_size=1,
                  max_size=25),
    cuts=st.lists(st.integers(min_value=0, max_value=25), max_size=4),
    query=st.lists(st.sampled_from([*WORDS, "unknown"]), min_size=1, max_size=4),
)
def test_splitting_into_segments_never_changes_scores(docs, cuts, query):
    whole = Bm25([TermPostings.from_texts(docs)])
    split = _in_parts(docs, cuts)
    terms = tokenize([" ".join(query)])[0]
    np.testing.assert_allclose(split.scores(terms), whole.scores(terms), rtol=1e-6, atol=1e-7)


def _term_by_term(bm25: Bm25, terms: list[str]) -> np.ndarray:
    """The reference: each term's shares added to every chunk in turn (float64)."""
    from collections import Counter

    out = np.zeros(bm25.n_docs)
    for term, times in Counter(terms).items():
        hits = [(k, *p.postings(term)) for k, p in enumerate(bm25.parts)]
        df = sum(len(r) for _, r, _ in hits)
        if df:
            idf = np.log(1.0 + (bm25.n_docs - df + 0.5) / (df + 0.5))
            for k, rows, counts in hits:
                tf = counts.astype(np.float64)
                out[bm25.offsets[k] + rows] += times * idf * tf / (bm25._norm[k][rows] + tf)
    return out.astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join), min_size=1,
                  max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=3),
    query=st.lists(st.sampled_from([*WORDS, "unknown"]), min_size=1, max_size=5),
    n=st.integers(1, 45),
)
def test_top_is_the_top_of_every_score_bit_for_bit(docs, cuts, query, n):
    from mograg.store.lexical_top import top_positive

    bm25 = _in_parts(docs, cuts)
    terms = tokenize([" ".join(query)])[0]
    every = bm25.scores(terms)
    assert every.tobytes() == _term_by_term(bm25, terms).tobytes()
    some = np.arange(len(docs))[::2]
    for small, share, cache in ((0, 0, 2**20), (0, 10**9, 2**20), (0, 10**9, 1),
                                (10**9, 0, 2**20)):
        # summed over every chunk / over the touched chunks only; terms' shares cached
        # (computed by scores() above) or evicted at once; a small level scored whole
        with mock.patch.object(lexical, "EVERY_CHUNK_ROWS", small), \
                mock.patch.object(lexical, "SPARSE_SHARE", share), \
                mock.patch.object(lexical, "TERM_CACHE_BYTES", cache):
            ids, scores, score_of = bm25.top(terms, n)
        assert ids.tolist() == top_positive(every, n).tolist()  # ties: lower position first
        assert scores.tobytes() == every[ids].tobytes()
        assert score_of(some).tobytes() == every[some].tobytes()


_COMMON_AND_RARE = st.tuples(
    st.integers(0, 3), st.integers(0, 2),
    st.sampled_from(["", "", "", "", "", "moon", "crater", "lava", "moon lava", "lava lava"]),
).map(lambda d: f"{'river ' * d[0]}{'delta ' * d[1]}{d[2]}")


@settings(max_examples=100, deadline=None)
@given(
    docs=st.lists(_COMMON_AND_RARE, min_size=10, max_size=80),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=2),
    query=st.lists(st.sampled_from(["river", "delta", "moon", "crater", "lava", "unknown"]),
                   min_size=2, max_size=5),
    n=st.integers(1, 12),
)
def test_top_with_terms_set_aside_is_the_top_of_every_score_bit_for_bit(docs, cuts, query, n):
    # frequent words make terms whose shares cannot reach the n-th best (set aside)
    from mograg.store.lexical_top import top_positive

    bm25 = _in_parts(docs, cuts)
    terms = tokenize([" ".join(query)])[0]
    every = bm25.scores(terms)
    with mock.patch.object(lexical, "SPARSE_SHARE", 0), \
            mock.patch.object(lexical, "EVERY_CHUNK_ROWS", 0):  # sum over touched chunks
        ids, scores, score_of = bm25.top(terms, n)
    assert ids.tolist() == top_positive(every, n).tolist()
    assert scores.tobytes() == every[ids].tobytes()
    everyone = np.arange(len(docs))
    assert score_of(everyone).tobytes() == every.tobytes()


def test_terms_that_cannot_reach_the_top_are_set_aside():
    # "river" is in every chunk once: its largest share is below the n-th best score of
    # the chunks that also have "lava", so it is only added to those
    docs = [f"river {'lava ' * (i % 3 + 1)}" if i % 4 == 0 else f"river delta{i}"
            for i in range(400)]
    bm25 = Bm25([TermPostings.from_texts(docs)])
    terms = tokenize(["river lava"])[0]
    found = bm25._terms(terms)
    kept = lexical_top.prune(found, 10, bm25.n_docs)
    assert kept is not None and len(kept[0]) == 100  # the chunks with "lava" only
    every = bm25.scores(terms)
    with mock.patch.object(lexical, "SPARSE_SHARE", 0), \
            mock.patch.object(lexical, "EVERY_CHUNK_ROWS", 0):  # sum over touched chunks
        ids, scores, _ = bm25.top(terms, 10)
    assert ids.tolist() == np.lexsort((np.arange(400), -every))[:10].tolist()
    assert scores.tobytes() == every[ids].tobytes()


def _arrays(p: TermPostings) -> dict[str, tuple[str, list]]:
    return {k: (str(np.asarray(getattr(p, k)).dtype), np.asarray(getattr(p, k)).tolist())
            for k in ("vocab", "indptr", "rows", "counts", "lengths")}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([*TEXTS, "", "the of and"]), min_size=1, max_size=12),
       st.data())
def test_kept_rows_equal_a_fresh_count(texts, data):
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(texts),
                                       max_size=len(texts))), dtype=bool)
    got = TermPostings.from_texts(texts).keep_rows(keep)
    want = TermPostings.from_texts([t for t, k in zip(texts, keep.tolist(), strict=True) if k])
    assert _arrays(got) == _arrays(want)


@pytest.mark.parametrize("context", [False, True])
def test_delete_inherits_postings_without_tokenizing(tmp_path, shared_embedder, context):
    ix = Index.create(tmp_path / "ix", levels=[16, 64], context=context)
    docs = [Document(k, v, {"title": k.title()}) for k, v in {**TOPICS, **FACTS}.items()]
    ix.add(docs[:4])
    ix.add(docs[4:])
    gone = [docs[1].id, docs[5].id]  # one from each segment
    with mock.patch.object(lexical, "tokenize", wraps=lexical.tokenize) as counted:
        ix.delete(gone)
    assert counted.call_count == 0  # the cut segments' postings were inherited
    lex = ix.root / "lexical" / ix.manifest["derived"]["lexical"]
    for j in range(2):
        lo = 0
        for name, seg in zip(ix.manifest["segments"], ix.snapshot.segments, strict=True):
            hi = lo + len(seg.levels[j])
            stored = TermPostings.load(segment_dir(lex, name, j))
            fresh = TermPostings.from_texts(ix.snapshot.indexed_texts(j, lo, hi))
            assert _arrays(stored) == _arrays(fresh)
            lo = hi
    assert not {h.doc_id for h in ix.search("cats Moon", mode="bm25", level=16).hits} & set(gone)
