"""BM25 per level, kept per segment so a write only counts the terms of what it adds.

Tokenization is bm25s's (English stopwords, Snowball stemming via PyStemmer), written out
in :func:`tokenize` because importing bm25s costs every cold ``mograg search`` 0.05-0.15 s
(tqdm and, when installed, scipy.sparse); tests/store/test_lexical.py checks the two agree.
Each segment stores, per level, its chunks' term counts column-major (term -> postings);
a level's BM25 combines the segments with corpus-wide statistics (number of chunks,
document frequencies, average length) at query time, so the scores are exactly those
of one index over all live chunks — bm25s's Lucene variant (k1 = 1.5, b = 0.75) —
while unchanged segments are never re-tokenized.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mograg.store.lexical_top import (
    Term,
    concatenate,
    prune,
    score_chunks,
    sum_by_row,
    top_n,
    top_positive,
)
from mograg.store.storage import fsync_dir, save_npy, write_bytes_durable

__all__ = ["top_n"]  # re-exported: callers rank any scores with it

K1 = 1.5
B = 0.75
FORMAT = "terms-1"
FORMAT_FILE = "format"
Scores = Callable[[np.ndarray], np.ndarray]
# below one posting per SPARSE_SHARE chunks, a level's BM25 is summed over the touched
# chunks only (sorting the postings) rather than into an array over every chunk
SPARSE_SHARE = 4
# a level of at most this many chunks is scored in one array over every chunk (bincount),
# then partitioned: its float64 sums (512 KB) stay in cache, and on dev-set levels of
# 800-13,000 chunks this takes 0.03-0.05 ms against 0.05-0.2 ms for the pruned or
# sorted paths, whose fixed cost is a few dozen numpy calls
EVERY_CHUNK_ROWS = 2**16
# per level: the postings and shares of recently queried terms (a term in 12 % of a
# million chunks takes ~2 MB)
TERM_CACHE_BYTES = 32 * 2**20
_ARRAYS = ("vocab", "indptr", "rows", "counts", "lengths")
# bm25s.tokenize's defaults: scikit-learn's token pattern and bm25s.stopwords.STOPWORDS_EN
_TERM = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
))


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """BM25 terms of each text (lowercased, stopwords removed, stemmed)."""
    stem = _stemmer().stemWord  # type: ignore[attr-defined]
    stems: dict[str, str] = {}
    out = []
    for text in texts:
        terms = []
        for word in _TERM.findall(text.lower()):
            if word in _STOPWORDS:
                continue
            s = stems.get(word)
            if s is None:
                s = stems[word] = stem(word)
            terms.append(s)
        out.append(terms)
    return out


@dataclass
class TermPostings:
    """Term counts of one segment's chunks at one level, by term (sorted vocabulary)."""

    vocab: np.ndarray  # sorted unique terms
    indptr: np.ndarray  # postings of vocab[i] are rows/counts[indptr[i]:indptr[i + 1]]
    rows: np.ndarray  # chunk rows (segment-local)
    counts: np.ndarray  # occurrences of the term in that chunk
    lengths: np.ndarray  # number of terms of every chunk

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> TermPostings:
        """Count the terms of ``texts`` (one per chunk)."""
        tokens = tokenize(texts) if texts else []
        lengths = np.array([len(t) for t in tokens], dtype=np.int32)
        per_term: dict[str, list[tuple[int, int]]] = {}
        for row, terms in enumerate(tokens):
            for term, n in Counter(terms).items():
                per_term.setdefault(term, []).append((row, n))
        vocab = sorted(per_term)
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(per_term[t]) for t in vocab])
        flat = [p for t in vocab for p in per_term[t]]
        rows = np.array([r for r, _ in flat], dtype=np.int32)
        counts = np.array([n for _, n in flat], dtype=np.int32)
        return cls(np.array(vocab, dtype=str), indptr, rows, counts, lengths)

    def keep_rows(self, keep: np.ndarray) -> TermPostings:
        """The postings of the chunks where ``keep`` is True, renumbered in order: what
        :meth:`from_texts` gives for the kept chunks' texts, without tokenizing them."""
        keep = np.asarray(keep, dtype=bool)
        if len(self.vocab) == 0:
            return TermPostings.from_texts([""] * int(keep.sum()))
        new_row = (np.cumsum(keep) - 1).astype(np.int32)
        live = keep[self.rows]
        # every term has postings (unused ones are dropped), so no reduceat range is empty
        per_term = np.add.reduceat(live.astype(np.int64), np.asarray(self.indptr[:-1]))
        used = per_term > 0
        indptr = np.zeros(int(used.sum()) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(per_term[used])
        return TermPostings(
            vocab=np.array(np.asarray(self.vocab)[used].tolist(), dtype=str),  # fresh width
            indptr=indptr,
            rows=new_row[np.asarray(self.rows)[live]],
            counts=np.asarray(self.counts)[live].astype(np.int32),
            lengths=np.asarray(self.lengths)[keep].astype(np.int32),
        )

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, counts) of the chunks containing ``term``."""
        i = int(np.searchsorted(self.vocab, term))
        if i >= len(self.vocab) or self.vocab[i] != term:
            empty = np.zeros(0, np.int32)
            return empty, empty
        lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
        return self.rows[lo:hi], self.counts[lo:hi]

    def save(self, directory: Path) -> None:
        """Write into a new directory (fsynced)."""
        directory.mkdir(parents=True)
        for name in _ARRAYS:
            save_npy(directory / f"{name}.npy", getattr(self, name))
        fsync_dir(directory)

    @classmethod
    def load(cls, directory: Path) -> TermPostings:
        """Read a saved segment level (memory-mapped, except the small vocabulary). The maps
        are held as plain arrays: slicing an ``np.memmap`` costs ~20 us per slice, a
        plain view of the same pages ~0.2 us (two slices per query term and level)."""
        arrays = {name: np.load(directory / f"{name}.npy", mmap_mode="r").view(np.ndarray)
                  for name in _ARRAYS}
        arrays["vocab"] = np.array(arrays["vocab"])
        return cls(**arrays)


class Bm25:
    """BM25 over the chunks of several segments (one level), scored as one corpus."""

    def __init__(self, parts: Sequence[TermPostings]) -> None:
        self.parts = list(parts)
        sizes = [len(p.lengths) for p in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n_docs = int(self.offsets[-1])
        lengths = [np.asarray(p.lengths, np.float64) for p in self.parts]
        total = sum(float(x.sum()) for x in lengths)
        self.avgdl = total / self.n_docs if self.n_docs else 0.0
        # the length normalisation of every chunk, K1 * (1 - B + B * length / avgdl)
        self._norm = [K1 * ((1.0 - B) + B * x / self.avgdl) if self.avgdl > 0
                      else np.zeros(len(x)) for x in lengths]
        # chunk positions as int32 where they fit: a smaller cache entry, and a stable
        # argsort of int32 takes half the time of int64's
        self._row_type = np.int32 if self.n_docs < 2**31 else np.int64
        self._cache: OrderedDict[tuple[str, int], Term] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every chunk for the (tokenized) query; a repeated term counts again."""
        return self._sums(query_terms).astype(np.float32)

    def top(self, query_terms: list[str], n: int) -> tuple[np.ndarray, np.ndarray, Scores]:
        """The ``n`` best chunks by BM25 among those with a positive score (all chunks when
        fewer have one), best first (ties: lower position first), their scores, and the
        score of any chunk: what :meth:`scores` and ``top_n`` give, bit for bit.

        A level of at most ``EVERY_CHUNK_ROWS`` chunks is scored over every chunk (one
        ``bincount``) and its positive scores partitioned. On a larger level, terms whose
        shares cannot lift a chunk to the ``n``-th best score are only added where other
        terms put chunks (``lexical_top.prune``). When the query's postings are few next
        to the level's chunks, the chunks they touch are found by sorting the postings (no
        array over every chunk is made or scanned); each chunk's shares are
        still added term by term in query order."""
        if self.n_docs <= EVERY_CHUNK_ROWS:
            every = self.scores(query_terms)
            ids = top_positive(every, n)
            return ids, every[ids], every.__getitem__
        terms = self._terms(query_terms)
        sparse = sum(len(t.rows) for t in terms) * SPARSE_SHARE < self.n_docs
        pruned = prune(terms, n, self.n_docs) if sparse and n > 0 else None
        if pruned is not None:
            touched, scores = pruned
            ids = touched[top_n(scores, n)].astype(np.int64)

            def exact(chunks: np.ndarray) -> np.ndarray:
                return score_chunks(terms, np.asarray(chunks))

            return ids, scores[np.searchsorted(touched, ids)], exact
        rows, shares = concatenate(terms, self._row_type)
        if len(rows) * SPARSE_SHARE >= self.n_docs:
            sums = self._add(rows, shares)
            # every share is at least idf / (1 + norm) > 1e-16: a positive sum stays
            # positive in float32
            touched = np.flatnonzero(sums > 0)
            scores = sums[touched].astype(np.float32)
        else:
            touched, scores64 = sum_by_row(rows, shares)
            scores = scores64.astype(np.float32)
        if len(touched) < n or not len(touched):
            every = np.zeros(self.n_docs, np.float32)
            every[touched] = scores
            ids = top_n(every, n)
            return ids, every[ids], every.__getitem__
        ids = touched[top_n(scores, n)].astype(np.int64)

        def score_of(chunks: np.ndarray) -> np.ndarray:
            at = np.searchsorted(touched, np.asarray(chunks).astype(touched.dtype))
            np.minimum(at, len(touched) - 1, out=at)
            return np.where(touched[at] == chunks, scores[at], np.float32(0.0))

        return ids, score_of(ids), score_of

    def _sums(self, query_terms: list[str]) -> np.ndarray:
        """Float64 BM25 of every chunk."""
        return self._add(*self._postings(query_terms))

    def _add(self, rows: np.ndarray, shares: np.ndarray) -> np.ndarray:
        """All terms' shares added in one ``bincount``: per chunk the same additions in
        the same order (term by term) as adding each term's shares in turn, so the same
        bits."""
        return np.bincount(rows, weights=shares, minlength=self.n_docs)

    def _postings(self, query_terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Every query term's postings (chunk positions) and BM25 shares (float64), term
        by term in query order."""
        return concatenate(self._terms(query_terms), self._row_type)

    def _terms(self, query_terms: list[str]) -> list[Term]:
        """The query's terms found in this level, in query order."""
        found = [self._term(term, times) for term, times in Counter(query_terms).items()]
        return [f for f in found if len(f.rows)]

    def _term(self, term: str, times: int) -> Term:
        """One term's postings and shares over all parts (``times`` it occurs in the
        query). A level's statistics are fixed for its generation, so they are kept in a
        small least-recently-used cache: a frequent term's shares are computed once, not
        per query."""
        key = (term, times)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        rows_of: list[np.ndarray] = []
        shares: list[np.ndarray] = []
        if self.n_docs and self.avgdl > 0:
            hits = [(k, *p.postings(term)) for k, p in enumerate(self.parts)]
            df = sum(len(rows) for _, rows, _ in hits)
            if df:
                weight = times * idf(self.n_docs, df)
                for k, rows, counts in hits:
                    if len(rows):
                        tf = counts.astype(np.float64)
                        rows_of.append(_positions(rows, int(self.offsets[k]), self._row_type))
                        shares.append(weight * tf / (self._norm[k][rows] + tf))
        all_shares = (shares[0] if len(shares) == 1 else
                      np.concatenate(shares) if shares else np.zeros(0, np.float64))
        found = Term(rows_of[0] if len(rows_of) == 1 else
                     np.concatenate(rows_of) if rows_of else np.zeros(0, self._row_type),
                     all_shares, float(all_shares.max()) if len(all_shares) else 0.0)
        with self._lock:
            self._cache[key] = found
            self._cached_bytes += found.nbytes
            while self._cached_bytes > TERM_CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= old.nbytes
        return found


def _positions(rows: np.ndarray, offset: int, dtype: type) -> np.ndarray:
    """A part's rows as positions in the level: the mapped postings themselves (no copy,
    pages the kernel can drop) when they need no offset or conversion."""
    if offset == 0 and rows.dtype == dtype:
        return rows
    return (offset + rows.astype(np.int64)).astype(dtype)


def idf(n_docs: int, df: int) -> float:
    """BM25's inverse document frequency of a term in ``df`` of ``n_docs`` units (never
    negative: log(1 + (N - df + 0.5) / (df + 0.5)))."""
    return float(np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5)))


def segment_dir(lexical_dir: Path, segment: str, level: int) -> Path:
    """Where one segment's postings of one level live inside a lexical directory."""
    return lexical_dir / segment / f"level-{level}"


def is_current(lexical_dir: Path) -> bool:
    """True if ``lexical_dir`` holds per-segment postings (not an older whole-corpus index)."""
    try:
        return (lexical_dir / FORMAT_FILE).read_text().strip() == FORMAT
    except OSError:
        return False


def reuse_or_build(
    target: Path, previous: Path | None, segment: str, level: int,
    texts: Callable[[], Sequence[str]], origin: tuple[str, np.ndarray] | None = None,
) -> bool:
    """Put a segment's postings into ``target``: hard-linked from ``previous`` if it has
    them (segments are immutable, so they are still right); for a segment cut from
    ``origin = (segment name, kept rows)`` by a delete, that segment's postings restricted
    to the kept rows; else counted from ``texts()``. Returns True unless counted."""
    dst = segment_dir(target, segment, level)
    if origin is not None and previous is not None:
        cut_from = segment_dir(previous, origin[0], level)
        if cut_from.is_dir():
            TermPostings.load(cut_from).keep_rows(origin[1]).save(dst)
            return True
    src = segment_dir(previous, segment, level) if previous is not None else None
    if src is not None and src.is_dir():
        dst.mkdir(parents=True)
        for f in src.iterdir():
            try:
                os.link(f, dst / f.name)
            except OSError:  # a file system without hard links: copy instead
                shutil.copy2(f, dst / f.name)
        fsync_dir(dst)
        return True
    TermPostings.from_texts(texts()).save(dst)
    return False


def mark_current(lexical_dir: Path) -> None:
    """Record the format once every segment is in place."""
    lexical_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_durable(lexical_dir / FORMAT_FILE, FORMAT.encode())
    fsync_dir(lexical_dir)
