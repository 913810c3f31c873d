"""Synthetic questions for `mograg tune`: runs of sentences as evidence, sized like real ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import FACTS, field_notes
from mograg.eval.synthetic import MAX_QUERY_WORDS, PASSAGE_TOKENS, passage_ends, synthetic_questions
from mograg.index.core import Index
from mograg.types import Document


@st.composite
def runs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sentences of a few documents (doc ids sorted, as in a snapshot), run starts, targets."""
    per_doc = draw(st.lists(st.integers(1, 12), min_size=1, max_size=6))
    doc = np.repeat(np.arange(len(per_doc)), per_doc)
    n_tokens = np.array(draw(st.lists(st.integers(1, 80), min_size=len(doc), max_size=len(doc))))
    starts = np.array(draw(st.lists(st.integers(0, len(doc) - 1), min_size=1, max_size=10)))
    targets = np.array(draw(st.lists(st.integers(1, 600), min_size=len(starts),
                                     max_size=len(starts))))
    return doc, n_tokens, starts, targets


@settings(max_examples=300, deadline=None)
@given(runs())
def test_passage_runs_stay_in_their_document_and_budget_and_are_maximal(case):
    doc, n_tokens, starts, targets = case
    ends = passage_ends(doc, n_tokens, starts, targets)
    for a, b, t in zip(starts.tolist(), ends.tolist(), targets.tolist(), strict=True):
        assert a <= b and doc[a] == doc[b]  # never crosses into the next document
        size = int(n_tokens[a:b + 1].sum())
        assert size <= t or b == a  # within the target (one sentence may exceed it)
        # maximal: the next sentence is in another document or would break the target
        assert b + 1 == len(doc) or doc[b + 1] != doc[a] or size + n_tokens[b + 1] > t


@pytest.fixture(scope="module")
def ix(tmp_path_factory, shared_embedder) -> Index:
    index = Index.create(tmp_path_factory.mktemp("synthetic") / "ix", levels=[32, 64, 128])
    index.add([Document(k, v, {"title": k.capitalize()}) for k, v in FACTS.items()]
              + [Document(f"notes-{s}", field_notes(s, 60), {"title": f"Notes {s}"})
                 for s in range(3)])
    return index


def test_passage_questions_cover_whole_sentences_of_one_document(ix):
    qs = synthetic_questions(ix, 40, shape="passage")
    assert 10 <= len(qs) <= 40 and len({q.id for q in qs}) == len(qs)
    snap = ix.snapshot
    atoms = snap.atoms
    sizes = []
    for q in qs:
        (doc_id, start, end), = q.evidence
        d = snap.doc_index[doc_id]
        mine = atoms[atoms["doc"] == d]
        assert start in mine["start"] and end in mine["end"]  # sentence boundaries
        inside = mine[(mine["start"] >= start) & (mine["end"] <= end)]
        sizes.append(len(inside))
        assert len(inside) == 1 or inside["n_tokens"].sum() <= PASSAGE_TOKENS[1]
        assert 3 <= len(q.question.split()) <= MAX_QUERY_WORDS + 3  # title words + key words
        assert q.question.startswith(str(snap.metadata(d)["title"]))
    assert max(sizes) > 1  # some runs of several sentences
    assert [q.question for q in synthetic_questions(ix, 40, shape="passage")] == [
        q.question for q in qs]


def test_sentence_questions_have_one_sentence(ix):
    snap = ix.snapshot
    atoms = snap.atoms
    for q in synthetic_questions(ix, 10):  # the default, what tune writes
        (doc_id, start, end), = q.evidence
        d = snap.doc_index[doc_id]
        assert ((atoms["doc"] == d) & (atoms["start"] == start) & (atoms["end"] == end)).any()


def test_a_document_mask_keeps_questions_inside_it(ix):
    snap = ix.snapshot
    mask = np.array([i.startswith("notes-") for i in snap.doc_ids])
    qs = synthetic_questions(ix, 20, docs=mask, shape="passage")
    assert qs and all(q.evidence[0][0].startswith("notes-") for q in qs)
