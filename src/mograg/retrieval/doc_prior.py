"""The document level of the tree: which documents a query is about.

Two votes per document, each at most one rank-1-sized vote in each level's fusion
(:func:`mograg.retrieval.rank.rank_level`):

- **content**: the documents ranked by BM25 of the question over their whole text (the
  document level's own ranking), each voting like a rank in the fusion, (K+1)/(K+rank+1):
  a call that discusses Salesforce throughout outranks one that names it once. Term
  counts are summed from the finest level's postings (no second tokenisation); with
  context those hold each chunk's context line, so the title words count here.
- **period**: periods and dates as comparable keys (:mod:`mograg.text.periods`): a
  document's *own* period (the one its title or file name names, else the one its text
  names most) and its own date count 1, periods it only *mentions* (next year's guidance,
  a comparison, the year of its date) :data:`MENTIONED`. A question's period scores every
  document by its best match; "fiscal year 2023" matches each quarter of it. A question
  asking for the **most recent** document ("latest", "most recent") and naming no period
  prefers the latest-dated of the documents whose names its words cover best.

Name words are not a vote of their own: a company's name matches all its documents
alike, and a named document's vote pushed out the bridge documents of multi-hop
questions (HotpotQA dev with context, budget 256, entropy router: recall .635 with a
name-coverage vote, .688 without; the earnings calls gained nothing from it).
A question that names no period gets no period vote; one that matches every document
equally moves nothing.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np

from mograg.store.lexical import K1, B, idf, tokenize
from mograg.text.context import document_context
from mograg.text.periods import (
    PERIOD_RE,
    PERIOD_WORDS,
    asked_keys,
    date_key,
    date_value,
    period_keys,
)
from mograg.types import RRF_K

__all__ = ["MENTIONED", "DocPrior", "prior_of"]

MENTIONED = 0.5  # a period a document mentions (not its own), relative to its own period
_RECENT = re.compile(r"\b(?:most\s+recent|latest|newest)\b", re.I)
_NUMBERISH = re.compile(r"^(?:\d+|fy\d+|q\d)$")


def _name_words(names: list[str]) -> list[set[str]]:
    """The words of each name (tokenised as BM25 does) that are not period words."""
    tokens = tokenize([PERIOD_RE.sub(" ", n) for n in names]) if names else []
    return [{w for w in ws if w not in _PERIOD_TERMS and not _NUMBERISH.match(w)}
            for ws in tokens]


_PERIOD_TERMS = frozenset(tokenize([" ".join(sorted(PERIOD_WORDS))])[0]) | PERIOD_WORDS


class DocPrior:
    """Per query, the votes of every document: named by the query, and relevant to it."""

    def __init__(self, snap: Any) -> None:
        n = snap.n_docs
        self.n_docs = n
        self._own: dict[str, list[int]] = defaultdict(list)
        self._mentioned: dict[str, list[int]] = defaultdict(list)
        self._word_docs: dict[str, list[int]] = defaultdict(list)
        self._dates = np.full(n, -1, np.int64)  # yyyymmdd of each document's date
        names: list[str] = []
        for d in range(n):
            ctx = document_context(snap.text(d), snap.metadata(d))
            names.append(ctx.name)
            own = period_keys(ctx.name) or (period_keys(ctx.periods[0]) if ctx.periods else set())
            mentioned: set[str] = set()
            for p in ctx.periods:
                mentioned |= period_keys(p)
            when = date_value(ctx.date) if ctx.date else None
            if when is not None:  # its own date; its year only as a mention (see module)
                own.add(str(date_key(ctx.date)))
                mentioned.add(f"y{when[0]}")
                self._dates[d] = when[0] * 10000 + when[1] * 100 + when[2]
            for k in own:
                self._own[k].append(d)
            for k in mentioned - own:
                self._mentioned[k].append(d)
        for d, words in enumerate(_name_words(names)):
            for w in words:
                self._word_docs[w].append(d)
        self._doc_of_atom = snap.atoms["doc"]
        self._first_atom = [lv["first_atom"] for lv in snap.levels]
        self._last: tuple[str, np.ndarray | None] | None = None
        self._name_idf: np.ndarray | None = None  # IDF mass of each document's name
        self._lexical = snap.lexical[0] if snap.lexical else None
        if self._lexical is not None:
            chunk_doc = self._doc_of_atom[self._first_atom[0]]
            self._chunk_doc = np.asarray(chunk_doc, np.int64)
            lengths = np.concatenate([np.asarray(p.lengths, np.float64)
                                      for p in self._lexical.parts]) if n else np.zeros(0)
            self._doc_len = np.bincount(self._chunk_doc, weights=lengths, minlength=n)

    def _content(self, terms: list[str]) -> np.ndarray | None:
        """Each document's vote from its rank by BM25 of its whole text, scaled so that
        rank 1 counts 1: (K + 1) / (K + rank + 1); 0 for documents without a query term."""
        if self._lexical is None or not terms:
            return None
        avg = float(self._doc_len.mean()) or 1.0
        norm = K1 * ((1.0 - B) + B * self._doc_len / avg)
        score = np.zeros(self.n_docs)
        for term in set(terms):
            tf = np.zeros(self.n_docs)
            for k, part in enumerate(self._lexical.parts):
                rows, counts = part.postings(term)
                if len(rows):
                    np.add.at(tf, self._chunk_doc[self._lexical.offsets[k] + rows], counts)
            df = int((tf > 0).sum())
            if df:
                score += idf(self.n_docs, df) * tf / (norm + tf)
        if score.max(initial=0.0) <= 0:
            return None
        rank = np.empty(self.n_docs)
        rank[np.argsort(-score, kind="stable")] = np.arange(self.n_docs)
        return np.where(score > 0, (RRF_K + 1) / (RRF_K + rank + 1), 0.0)

    def _periods(self, text: str) -> np.ndarray | None:
        keys = asked_keys(text)
        if not keys:
            return None
        score = np.zeros(self.n_docs)
        for k in keys:
            for docs, value in ((self._mentioned.get(k), MENTIONED), (self._own.get(k), 1.0)):
                if docs:
                    score[docs] = np.maximum(score[docs], value)
        return score if score.max() > 0 else None

    def _idf(self, w: str) -> float:
        df = len(self._word_docs.get(w, ()))
        return idf(self.n_docs, df) if df else 0.0

    def _names(self, terms: list[str]) -> np.ndarray | None:
        """How well the query's words cover each document's name (title and file name,
        period words left out): IDF of the words matched times the share of the name's
        IDF they are ("Paris Hilton" is named by "Paris Hilton", half by "Paris")."""
        if self._name_idf is None:
            total = np.zeros(self.n_docs)
            for w, docs in self._word_docs.items():
                total[docs] += self._idf(w)
            self._name_idf = total
        matched = np.zeros(self.n_docs)
        for w in set(terms):
            if w in self._word_docs:
                matched[self._word_docs[w]] += self._idf(w)
        score = matched * np.divide(matched, self._name_idf, out=np.zeros(self.n_docs),
                                    where=self._name_idf > 0)
        top = score.max(initial=0.0)
        return score / top if top > 0 else None

    def _latest(self, names: np.ndarray | None) -> np.ndarray | None:
        """The latest-dated of the documents the name words match best (else of all)."""
        dates = self._dates if names is None else np.where(names >= 1.0, self._dates, -1)
        top = dates.max(initial=-1)
        if top < 0:
            return None
        return np.where(dates == top, 1.0, np.where(dates >= 0, MENTIONED, 0.0))

    def named_weights(self, query: Any) -> np.ndarray | None:
        """How much each document is the one ``query`` names by its period or date, or
        asks for as the most recent (0..1, the best 1); None when it names none."""
        w = self._periods(query.text)
        if w is None and _RECENT.search(query.text):
            w = self._latest(self._names(query.terms))
        if w is None:
            return None
        top = w.max(initial=0.0)
        return w / top if top > 0 else None

    def content_weights(self, query: Any) -> np.ndarray | None:
        """Each document's vote from its rank by BM25 of its whole text (see
        :meth:`_content`); None without BM25 data or a matching term."""
        return self._content(query.terms)

    def doc_weights(self, query: Any) -> np.ndarray | None:
        """Votes of every document for ``query`` (its ``text`` and BM25 ``terms``): naming
        plus content, each 0..1; None when neither applies. Cached for the last query
        (every level of one search asks)."""
        last = self._last
        if last is not None and last[0] == query.text:
            return last[1]
        named, content = self.named_weights(query), self.content_weights(query)
        if named is None or content is None:
            w = named if content is None else content
        else:
            w = named + content
        self._last = (query.text, w)
        return w

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
