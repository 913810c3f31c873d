"""The document level of the tree: which documents a query is about, from their context.

BM25 over each document's context line (title and periods, :mod:`mograg.text.context`)
gives every document a score for a query; chunk rankings add it, scaled to the best
document, as one more rank-1-sized vote in the fusion. A query that names no title or
period matches no context (all zero: no effect); one that matches every document
equally moves nothing either; "Q3 2023 ... cash position" lifts the Q3 2023 call's
chunks above the same paragraph of other quarters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mograg.store.lexical import Bm25, TermPostings
from mograg.text.context import document_context

__all__ = ["DocPrior", "prior_of"]


class DocPrior:
    """BM25 of every document's title-and-periods line, per query (normalised to 0..1)."""

    def __init__(self, snap: Any) -> None:
        lines = []
        for d in range(snap.n_docs):
            ctx = document_context(snap.text(d), snap.metadata(d))
            lines.append(" ".join([ctx.title, *ctx.periods]))
        self._bm25 = Bm25([TermPostings.from_texts(lines)]) if lines else None
        self._doc_of_atom = snap.atoms["doc"]
        self._first_atom = [lv["first_atom"] for lv in snap.levels]

    def doc_weights(self, terms: list[str]) -> np.ndarray | None:
        """Score of every document divided by the best one; None when none matches."""
        if self._bm25 is None:
            return None
        s = self._bm25.scores(terms)
        top = float(s.max(initial=0.0))
        if top <= 0:
            return None
        return s / top

    def chunk_weights(self, j: int, chunks: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The document weight of each chunk of level ``j``."""
        return weights[self._doc_of_atom[self._first_atom[j][chunks]]]


def prior_of(snap: Any) -> DocPrior | None:
    """The document prior of a snapshot of an index with context (built once per
    snapshot), else None."""
    prior = snap.__dict__.get("_doc_prior", False)
    if prior is False:
        ok = bool(snap.manifest.get("context")) and snap.n_docs > 0
        prior = DocPrior(snap) if ok else None
        snap.__dict__["_doc_prior"] = prior
    return prior
