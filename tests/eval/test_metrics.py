"""Tests for mograg.eval.metrics: character-level span scores, MRR and answer matching."""

from __future__ import annotations

import pytest

from mograg.answer.squad import answer_found, normalize_answer
from mograg.eval.metrics import merge_intervals, reciprocal_rank, span_scores


def approx(*values: float):
    return pytest.approx(values)


def test_exact_match():
    assert span_scores([("a", 10, 20)], [("a", 10, 20)]) == approx(1.0, 1.0, 1.0)


def test_partial_overlap():
    # retrieved 0..10, gold 5..20: overlap 5, gold 15, retrieved 10, union 20
    assert span_scores([("a", 0, 10)], [("a", 5, 20)]) == approx(5 / 15, 5 / 10, 5 / 20)


def test_retrieved_inside_gold():
    assert span_scores([("a", 5, 10)], [("a", 0, 20)]) == approx(5 / 20, 1.0, 5 / 20)


def test_touching_is_not_overlap():
    assert span_scores([("a", 0, 10)], [("a", 10, 20)]) == approx(0.0, 0.0, 0.0)


def test_same_offsets_in_other_document_do_not_count():
    assert span_scores([("b", 10, 20)], [("a", 10, 20)]) == approx(0.0, 0.0, 0.0)


def test_multiple_documents():
    retrieved = [("a", 0, 10), ("b", 0, 10)]
    gold = [("a", 0, 5), ("b", 5, 15), ("c", 0, 10)]
    # inter: a 5 + b 5 = 10; gold 5 + 10 + 10 = 25; retrieved 20; union 35
    assert span_scores(retrieved, gold) == approx(10 / 25, 10 / 20, 10 / 35)


def test_overlapping_retrieved_spans_counted_once():
    once = span_scores([("a", 0, 10)], [("a", 0, 20)])
    twice = span_scores([("a", 0, 10), ("a", 0, 10), ("a", 5, 10), ("a", 2, 8)], [("a", 0, 20)])
    assert twice == approx(*once)
    assert once == approx(0.5, 1.0, 0.5)


def test_overlapping_gold_spans_counted_once():
    assert span_scores([("a", 0, 10)], [("a", 0, 10), ("a", 5, 10)]) == approx(1.0, 1.0, 1.0)


def test_multiple_intervals_in_one_document():
    retrieved = [("a", 0, 4), ("a", 8, 12), ("a", 20, 30)]
    gold = [("a", 2, 10), ("a", 25, 26)]
    # inter: [2,4)=2 + [8,10)=2 + [25,26)=1 = 5; gold 8+1=9; retrieved 4+4+10=18
    assert span_scores(retrieved, gold) == approx(5 / 9, 5 / 18, 5 / (9 + 18 - 5))


def test_empty_retrieval():
    assert span_scores([], [("a", 0, 10)]) == approx(0.0, 0.0, 0.0)


def test_empty_gold():
    assert span_scores([("a", 0, 10)], []) == approx(0.0, 0.0, 0.0)
    assert span_scores([], []) == approx(0.0, 0.0, 0.0)


def test_gold_in_document_never_retrieved():
    # half of the gold is in a document nothing came from: recall halves, precision stays
    assert span_scores([("a", 0, 10)], [("a", 0, 10), ("z", 0, 10)]) == approx(0.5, 1.0, 0.5)


def test_degenerate_spans_ignored():
    assert span_scores([("a", 5, 5), ("a", 9, 3)], [("a", 0, 10)]) == approx(0.0, 0.0, 0.0)


def test_merge_intervals():
    assert merge_intervals([(5, 8), (0, 2), (1, 3), (3, 4), (10, 10)]) == [(0, 4), (5, 8)]
    assert merge_intervals([]) == []


def test_reciprocal_rank():
    gold = [("a", 100, 120)]
    assert reciprocal_rank([("a", 100, 110)], gold) == 1.0
    assert reciprocal_rank([("b", 100, 120), ("a", 0, 50), ("a", 119, 200)], gold) == 1 / 3
    assert reciprocal_rank([("a", 0, 100), ("a", 120, 130)], gold) == 0.0  # touching only
    assert reciprocal_rank([], gold) == 0.0
    assert reciprocal_rank([("a", 0, 10)], []) == 0.0
    # first overlapping one counts, later ones do not raise it
    assert reciprocal_rank([("x", 0, 1), ("a", 110, 111), ("a", 100, 120)], gold) == 0.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("  $35   a month. ", "35 a month"),
        ("“Quoted” — dash–en", "quoted dash en"),
        ("U.S.A.", "u s a"),
        ("ＡＢＣ", "abc"),  # NFKC folds full-width forms
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_answer_found_case_and_punctuation():
    assert answer_found("Seniors now pay $35 a month for insulin.", ["$35 A MONTH"])
    assert answer_found("It joined NATO: Finland, then Sweden.", ["nobody", "finland"])
    assert answer_found("Finland", ["Finland."])


def test_answer_found_whole_words_only():
    assert not answer_found("We had a party last night.", ["art"])
    assert not answer_found("The partisans arrived.", ["art"])
    assert answer_found("Modern art, they said.", ["art"])
    assert answer_found("art", ["art"])
    assert not answer_found("artist", ["art"])


def test_answer_found_multi_word_must_be_contiguous():
    assert not answer_found("a month of 35 days", ["35 a month"])


def test_answer_found_empty_answers():
    assert not answer_found("anything at all", [])
    assert not answer_found("anything at all", ["", "  ", "!!"])
    assert not answer_found("", ["x"])
