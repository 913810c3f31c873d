"""Per-level ranking (dense, BM25, or both fused) and token-budget assembly."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mograg.embed.base import calibrate_cosine
from mograg.retrieval.chunk_table import chunk_table
from mograg.retrieval.doc_prior import prior_of
from mograg.store.backend import DENSE_LEVELS
from mograg.store.lexical import tokenize
from mograg.store.query_sims import QuerySims
from mograg.text.context import recorded_section
from mograg.text.tokens import MAX_TOKEN_CHARS
from mograg.types import RRF_K, Hit, LevelRanking, Mode, Pick, Query

if TYPE_CHECKING:
    from mograg.store.backend import SearchBackend
    from mograg.store.snapshot import Snapshot

DEFAULT_CANDIDATES = 50
# an isolated piece shorter than this share of the finest level's size (the 2-token
# tail of a sentence cut at that size, a lone heading) is noise in a context: it is
# only taken next to text already taken, or when it is a whole document
MIN_ISOLATED_SHARE = 0.25


def make_query(text: str, vector: np.ndarray, n_tokens: int = 0) -> Query:
    """Bundle a query's text, vector and BM25 terms."""
    return Query(text=text, vector=np.asarray(vector, np.float32), terms=tokenize([text])[0],
                 n_tokens=n_tokens)


def rank_level(
    backend: SearchBackend, j: int, query: Query, mode: Mode = "hybrid",
    n: int = DEFAULT_CANDIDATES,
) -> LevelRanking:
    """Rank the chunks of level ``j`` for ``query``; keep the best ``n``.

    Hybrid mode fuses the backend's dense and BM25 top-``n`` by reciprocal rank (only
    chunks with a positive BM25 score count); ties go to the higher dense similarity.
    """
    return _fuse(backend, j, query, mode, n, None)


def rank_levels(
    backend: SearchBackend, levels: Sequence[int], query: Query, mode: Mode = "hybrid",
    n: int = DEFAULT_CANDIDATES,
) -> list[LevelRanking]:
    """:func:`rank_level` of each of ``levels``; a backend that can
    (:data:`~mograg.store.backend.DENSE_LEVELS`) computes the dense similarities of all
    of them in one pass down the level tree; each such ranking keeps its level's
    similarities (:attr:`~mograg.types.LevelRanking.similarities`)."""
    sims: dict[int, np.ndarray] = {}
    snap = backend.snapshot
    if snap is not None and mode != "bm25" and DENSE_LEVELS in backend.capabilities:
        exact = [j for j in levels if snap.n_chunks(j) and not snap.uses_ann(j)]
        if len(exact) > 1:
            sims = snap.similarity_levels(query.vector, exact)
    floor = snap.cosine_floor if snap is not None else 0.0
    return [_fuse(backend, j, query, mode, n,
                  calibrate_cosine(sims[j], floor) if j in sims else None, sims.get(j))
            for j in levels]


def _fuse(
    backend: SearchBackend, j: int, query: Query, mode: Mode, n: int, dense: np.ndarray | None,
    sims: np.ndarray | None = None,
) -> LevelRanking:
    snap = backend.snapshot
    if snap is None or snap.n_chunks(j) == 0:
        return LevelRanking(j, np.zeros(0, np.int64), np.zeros(0, np.float32))
    s = backend.score_level(j, query, mode, n, dense)
    if mode == "dense":
        scores = np.asarray(s.dense_scores, np.float32)
        return LevelRanking(j, s.dense_ids.astype(np.int64), scores, dense=scores.copy(),
                            bm25=np.zeros(0, np.float32), similarities=sims)
    if mode == "bm25":
        scores = np.asarray(s.bm25_scores, np.float32)
        return LevelRanking(j, s.bm25_ids.astype(np.int64), scores,
                            dense=np.zeros(0, np.float32), bm25=scores.copy())
    cand, vals = rrf_fuse(s.dense_ids, s.bm25_ids, s.bm25_scores)
    prior = prior_of(snap)
    weights = prior.doc_weights(query) if prior is not None else None
    if prior is not None and weights is not None:  # the document level: one more vote
        vals = vals + prior.chunk_weights(j, cand, weights) / (RRF_K + 1)
    dense_c = s.dense_of(cand)
    order = np.lexsort((-dense_c, -vals))[:n]
    ids = cand[order]
    return LevelRanking(
        level=j,
        ids=ids.astype(np.int64),
        scores=vals[order].astype(np.float32),
        dense=np.asarray(dense_c[order], np.float32),
        bm25=np.asarray(s.bm25_of(ids), np.float32),
        similarities=sims,
    )


def rrf_fuse(
    dense_ids: np.ndarray, bm25_ids: np.ndarray, bm25_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal-rank fusion of a dense and a BM25 ranking (only positive BM25 scores
    count): the chunks, dense ones first then BM25's others in rank order, and their
    summed ``1 / (RRF_K + rank)``."""
    d_ids = np.asarray(dense_ids, np.int64)
    ranks = np.flatnonzero(np.asarray(bm25_scores) > 0)
    b_ids = np.asarray(bm25_ids, np.int64)[ranks]
    b_vals = 1.0 / (RRF_K + ranks + 1.0)
    vals = 1.0 / (RRF_K + np.arange(len(d_ids)) + 1.0)
    pos, in_dense = positions_in(d_ids, b_ids)
    vals[pos[in_dense]] += b_vals[in_dense]
    cand = np.concatenate([d_ids, b_ids[~in_dense]])
    return cand, np.concatenate([vals, b_vals[~in_dense]])


def positions_in(ids: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each key's position in ``ids`` (distinct) and whether it is there at all."""
    if not len(ids):
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    order = np.argsort(ids, kind="stable")
    at = np.minimum(np.searchsorted(ids[order], keys), len(ids) - 1)
    return order[at], ids[order[at]] == keys


class BudgetFiller:
    """Fill a token budget with chunks, never taking a sentence twice.

    A chunk that no longer fits is replaced by its best-matching children (by dense
    similarity to the query), recursively, so a coarse level still contributes its
    most relevant part instead of nothing.
    """

    def __init__(self, snap: Snapshot, query: Query, budget: int,
                 sims: QuerySims | None = None) -> None:
        self.snap = snap
        self.query = query
        self.sims = sims if sims is not None else QuerySims(snap, query.vector)
        self.remaining = budget
        self.taken: dict[int, tuple[float, int, int]] = {}  # atom -> (score, level, order)
        self._order = 0
        self._atom_tokens = snap.atoms["n_tokens"]
        self._totals = snap.token_totals
        self._atom_ranges = snap.atom_ranges
        self._table = chunk_table(snap)
        self._min_isolated = int(MIN_ISOLATED_SHARE * snap.sizes[0]) if snap.sizes else 0
        # could_take's last answer: the pick, its new sentences and their tokens
        self._asked: tuple[Pick, list[int], int] | None = None
        self._fits: tuple[Pick, bool] | None = None  # its _part_fits answer, if it asked

    def offer(self, pick: Pick) -> None:
        """Take the chunk (or its best parts) if it fits the remaining budget."""
        if self.remaining <= 0:
            return
        new, cost = self._new_atoms(pick)
        if not new:
            return
        if cost < self._min_isolated and self._isolated(new):
            return
        if cost <= self.remaining:
            self._take(new, pick, cost)
            return
        # anything taken from inside costs at least its cheapest new sentence: prune early
        if pick.level == 0 or self._cheapest(pick, new) > self.remaining:
            return
        fits = self._fits
        if not (fits[1] if fits is not None and fits[0] is pick else self._part_fits(pick, new)):
            return
        lo, hi = self.snap.children[pick.level][pick.chunk : pick.chunk + 2]
        kids = np.arange(lo, hi, dtype=np.int64)
        sims = self.sims.of(pick.level - 1, kids)
        for k in kids[np.argsort(-sims, kind="stable")].tolist():
            self.offer(Pick(pick.level - 1, k, pick.score, pick.linked))
            if self.remaining <= 0:
                break

    def could_take(self, pick: Pick) -> bool:
        """False when offering ``pick`` would certainly take nothing: its sentences are
        taken already, or neither it nor any of its finest chunks fits the rest of the
        budget. (True may still take nothing: a short piece on its own.)"""
        if self.remaining <= 0:
            return False
        new, cost = self._new_atoms(pick)
        self._asked = (pick, new, cost)  # offered next, before anything else is taken
        if not new:
            return False
        if cost <= self.remaining:
            return True
        if pick.level == 0 or self._cheapest(pick, new) > self.remaining:
            return False
        fits = self._part_fits(pick, new)
        self._fits = (pick, fits)  # asked again by offer, before anything is taken
        return fits

    def _new_atoms(self, pick: Pick) -> tuple[list[int], int]:
        """The pick's sentences not taken yet (ascending) and their tokens."""
        asked = self._asked
        if asked is not None and asked[0] is pick:
            self._asked = None
            return asked[1], asked[2]
        first, last = self._atom_ranges[pick.level]
        a, b = int(first[pick.chunk]), int(last[pick.chunk]) + 1
        taken = self.taken
        new = [i for i in range(a, b) if i not in taken] if taken else list(range(a, b))
        if len(new) == b - a:  # all of them: one run, from the running totals
            return new, int(self._totals[b]) - int(self._totals[a])
        return new, int(self._atom_tokens[new].sum()) if new else 0

    def _cheapest(self, pick: Pick, new: list[int]) -> int:
        """Tokens of the cheapest of the pick's sentences ``new``."""
        first, last = self._atom_ranges[pick.level]
        if len(new) == int(last[pick.chunk]) + 1 - int(first[pick.chunk]):  # all of them
            return int(self._table.cheapest_piece[self._table.offsets[pick.level] + pick.chunk])
        return int(self._atom_tokens[new].min())

    def _part_fits(self, pick: Pick, new: list[int]) -> bool:
        """False when no finest chunk inside ``pick`` has untaken sentences costing at
        most the remaining budget: a finest chunk is taken whole or not at all, and a
        coarser one only when all of its finest chunks would fit, so splitting the pick
        would take nothing (and change nothing for its siblings)."""
        first, last = self._atom_ranges[pick.level]
        if len(new) == int(last[pick.chunk]) + 1 - int(first[pick.chunk]):
            # nothing inside taken: each finest chunk costs all of its sentences
            row = self._table.offsets[pick.level] + pick.chunk
            return int(self._table.cheapest_finest[row]) <= self.remaining
        lo, hi = self.snap.finest_range(pick.level, pick.chunk)
        starts = self._atom_ranges[0][0][lo:hi]
        atoms = np.asarray(new, np.int64)
        group = np.searchsorted(starts, atoms, "right") - 1
        cost = np.bincount(group, weights=self._atom_tokens[atoms], minlength=hi - lo)
        present = np.bincount(group, minlength=hi - lo) > 0
        return bool((cost[present] <= self.remaining).any())

    def _isolated(self, atoms: list[int]) -> bool:
        """True unless the atoms touch taken text or make up a whole document."""
        doc = self.snap.atoms["doc"]
        lo, hi = atoms[0], atoms[-1]
        before = lo > 0 and doc[lo - 1] == doc[lo]
        after = hi + 1 < len(doc) and doc[hi + 1] == doc[hi]
        if not before and not after:
            return False  # the whole document
        return not ((before and lo - 1 in self.taken) or (after and hi + 1 in self.taken))

    def _take(self, atoms: list[int], pick: Pick, cost: int) -> None:
        self._asked = self._fits = None  # what was asked no longer holds
        self._order += 1
        for a in atoms:
            self.taken[a] = (pick.score, pick.level, self._order)
        self.remaining -= cost

    def hits(self, sizes: Sequence[int]) -> list[Hit]:
        """Merge taken sentences into contiguous spans, best first."""
        snap = self.snap
        atoms = sorted(self.taken)
        runs: list[list[int]] = []
        table = snap.atoms
        for a in atoms:
            # adjacent sentences merge, unless a long run of whitespace lies between them
            # (it is charged nothing, so it must not be returned: see mograg.text.tokens)
            if (runs and a == runs[-1][-1] + 1 and table[a]["doc"] == table[a - 1]["doc"]
                    and int(table[a]["start"]) - int(table[a - 1]["end"]) <= MAX_TOKEN_CHARS):
                runs[-1].append(a)
            else:
                runs.append([a])
        out: list[tuple[float, int, Hit]] = []
        for run in runs:
            best = max(run, key=lambda a: (self.taken[a][0], -self.taken[a][2]))
            score, level, order = self.taken[best]
            first, last = snap.atoms[run[0]], snap.atoms[run[-1]]
            doc = int(first["doc"])
            start, end = int(first["start"]), int(last["end"])
            meta = snap.metadata(doc)
            starts = meta.get("page_starts")
            text = snap.text(doc)
            hit = Hit(
                doc_id=snap.doc_ids[doc],
                start=start,
                end=end,
                level=sizes[level],
                score=float(score),
                text=text[start:end],
                n_tokens=int(self._atom_tokens[run].sum()),
                page=max(1, bisect_right(starts, start)) if starts else None,
                section=recorded_section(text, meta, start),
            )
            out.append((-score, order, hit))
        out.sort(key=lambda t: (t[0], t[1]))
        return [h for _, _, h in out]


def assemble(
    snap: Snapshot, query: Query, picks: Sequence[Pick], budget: int,
    stats: dict[str, int] | None = None, sims: QuerySims | None = None,
) -> list[Hit]:
    """Fill up to ``budget`` tokens from ``picks`` in the given order, skipping candidates
    below the relevance floor and near-duplicates of another document's
    (:mod:`mograg.retrieval.prune`; only candidates that could still add text are
    compared, and kept for later comparisons); ``stats`` receives how many were skipped
    (of the candidates examined before the budget could take nothing more). ``sims``: the
    query's similarities a search has already (else read from the vectors)."""
    from mograg.retrieval.prune import clean_indexed

    filler = BudgetFiller(snap, query, budget, sims)
    rest: Leftovers | None = None
    for i, p in clean_indexed(snap, query, picks, stats, filler.could_take, filler.sims):
        before = filler.remaining
        filler.offer(p)
        if filler.remaining <= 0:
            break
        if filler.remaining < before:
            rest = rest or Leftovers(snap, picks)
            if not rest.could_fill(i + 1, filler):
                break
    return filler.hits(snap.sizes)


class Leftovers:
    """The sentences of a candidate list, by position: once none of the candidates still
    to come can add anything to a nearly full budget, filling stops (the same hits as
    offering them all, without comparing each with every candidate taken)."""

    def __init__(self, snap: Snapshot, picks: Sequence[Pick]) -> None:
        n = len(picks)
        level = np.fromiter((p.level for p in picks), np.int64, n)
        chunk = np.fromiter((p.chunk for p in picks), np.int64, n)
        first = np.zeros(n, np.int64)
        last = np.zeros(n, np.int64)
        for j in np.unique(level).tolist():
            at = level == j
            first_atom, last_atom = snap.atom_ranges[j]
            first[at] = first_atom[chunk[at]]
            last[at] = last_atom[chunk[at]]
        lens = last - first + 1
        self.start = np.zeros(n + 1, np.int64)  # candidate k's sentences: start[k]:start[k+1]
        np.cumsum(lens, out=self.start[1:])
        self.atoms = np.repeat(first - self.start[:-1], lens) + np.arange(self.start[-1])
        self.tokens = snap.atoms["n_tokens"][self.atoms]
        self.snap = snap

    def could_fill(self, k: int, filler: BudgetFiller) -> bool:
        """False when no candidate from position ``k`` on can be taken, whole or in part.

        Anything taken costs at most the remaining budget and holds a sentence not
        taken yet that costs no more; below the isolated-piece minimum, that sentence
        must also start its document or touch taken text (see :class:`BudgetFiller`).
        """
        atoms = self.atoms[self.start[k]:]
        if not len(atoms):
            return False
        left = filler.remaining
        # sorted once: positions_in's stable argsort of sorted ids is one linear pass
        taken = np.sort(np.fromiter(filler.taken, np.int64, len(filler.taken)))
        open_ = (self.tokens[self.start[k]:] <= left) & ~positions_in(taken, atoms)[1]
        if left >= filler._min_isolated or not open_.any():
            return bool(open_.any())
        atoms = atoms[open_]
        doc = self.snap.atoms["doc"]
        n_atoms = len(doc)
        prev = np.maximum(atoms - 1, 0)
        nxt = np.minimum(atoms + 1, n_atoms - 1)
        starts_doc = (atoms == 0) | (doc[prev] != doc[atoms])
        after_taken = ((atoms > 0) & (doc[prev] == doc[atoms])
                       & positions_in(taken, prev)[1])
        before_taken = ((atoms + 1 < n_atoms) & (doc[nxt] == doc[atoms])
                        & positions_in(taken, nxt)[1])
        return bool((starts_doc | after_taken | before_taken).any())


def picks_from_ranking(ranking: LevelRanking, limit: int | None = None) -> list[Pick]:
    """Candidates of one level, in rank order (``limit``: only the first that many)."""
    j = ranking.level
    return [Pick(j, c, s) for c, s in zip(
        ranking.ids[:limit].tolist(), ranking.scores[:limit].tolist(), strict=True)]
