"""``rrf-levels``: reciprocal-rank fusion of every level's ranking, no training.

The untrained rival of the routers (multi-scale fusion as used in industry): every
level's candidates go into one list scored ``1 / (k + rank)``; equal ranks are ordered
by dense similarity to the query. The budget filler then takes them in that order,
never repeating a sentence, so a region that wins at several sizes is taken once at
its best-ranked size.
"""

from __future__ import annotations

from collections.abc import Sequence

from mograg.types import RRF_K, LevelRanking, Pick

RRF_LEVELS = "rrf-levels"


def rrf_picks(rankings: Sequence[LevelRanking], k: int = RRF_K) -> list[Pick]:
    """All levels' candidates in reciprocal-rank order."""
    keyed: list[tuple[float, float, int, int]] = []
    for r in rankings:
        dense = r.dense.tolist() if len(r.dense) == len(r.ids) else [0.0] * len(r.ids)
        for rank, (c, d) in enumerate(zip(r.ids.tolist(), dense, strict=True)):
            keyed.append((-1.0 / (k + rank + 1), -d, r.level, c))
    keyed.sort()
    return [Pick(level, c, -s) for s, _, level, c in keyed]
