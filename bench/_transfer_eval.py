"""Scoring router weights on a dumped dev set without searching again (bench helper).

Rankings come from ``transfer_data``'s files; each granularity's candidate list is built
once per question and reused by every system, so a new set of weights costs only the
blend and the budget filler.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mograg.eval.evaluate import score_hits
from mograg.retrieval.fusion import rrf_picks
from mograg.retrieval.rank import assemble
from mograg.retrieval.routing import blend_picks, granularity_picks
from mograg.types import LevelRanking, Query
from transfer_data import load_set, open_set, rebuild, set_questions


class SetRunner:
    """One dev set: its index, questions, stored arrays and cached candidate lists."""

    def __init__(self, name: str, budget: int = 256) -> None:
        self.name = name
        self.budget = budget
        self.data = load_set(name, budget)
        self.names: list[str] = self.data["meta"]["names"]
        self.index = open_set(name)
        self.questions = set_questions(self.name, self.index)
        assert [q.id for q in self.questions] == self.data["meta"]["ids"]
        self._picks: dict[int, list] = {}
        self._queries: dict[int, tuple] = {}

    @property
    def n(self) -> int:
        """Number of questions."""
        return len(self.questions)

    def query(self, i: int) -> tuple[Query, list[LevelRanking]]:
        """Question ``i``'s query and rankings."""
        if i not in self._queries:
            self._queries[i] = rebuild(self.data, i)
        return self._queries[i]

    def picks(self, i: int) -> list:
        """Candidate lists of every granularity for question ``i``."""
        if i not in self._picks:
            q, rankings = self.query(i)
            self._picks[i] = [granularity_picks(self.index, q, rankings, n) for n in self.names]
        return self._picks[i]

    def blend_recall(self, weights: np.ndarray) -> np.ndarray:
        """Per-question recall of the blend strategy under ``weights`` (n x G)."""
        snap = self.index.snapshot
        out = np.zeros(self.n)
        for i in range(self.n):
            q, _ = self.query(i)
            picks = blend_picks(snap, self.picks(i), np.asarray(weights[i], np.float64))
            out[i] = score_hits(assemble(snap, q, picks, self.budget), self.questions[i])["recall"]
        return out

    def picks_recall(self, make: Callable[[int], list], only: np.ndarray | None = None
                     ) -> np.ndarray:
        """Per-question recall of any pick order ``make(i)`` (``only``: these questions)."""
        snap = self.index.snapshot
        out = np.full(self.n, np.nan)
        for i in (range(self.n) if only is None else only.tolist()):
            q, _ = self.query(i)
            out[i] = score_hits(assemble(snap, q, make(i), self.budget),
                                self.questions[i])["recall"]
        return out

    def rrf_recall(self) -> np.ndarray:
        """Per-question recall of ``rrf-levels``."""
        return self.picks_recall(lambda i: rrf_picks(self.query(i)[1]))
