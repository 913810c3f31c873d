"""Retrieval metrics against gold evidence spans (character level) and answer strings."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from mograg.types import Span, merge_intervals

__all__ = ["Span", "merge_intervals"]  # re-exported: defined with the shared vocabulary

def _by_doc(spans: Iterable[Span]) -> dict[str, list[tuple[int, int]]]:
    grouped: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for d, s, e in spans:
        grouped[d].append((s, e))
    return {d: merge_intervals(v) for d, v in grouped.items()}


def _length(intervals: Sequence[tuple[int, int]]) -> int:
    return sum(e - s for s, e in intervals)


def _intersection(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> int:
    i = j = total = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def span_scores(retrieved: Iterable[Span], gold: Iterable[Span]) -> tuple[float, float, float]:
    """Character-level (recall, precision, IoU) of the retrieved union against the gold union.

    Empty retrieval scores 0/0/0; empty gold gives recall 0 (nothing to recall).
    """
    r, g = _by_doc(retrieved), _by_doc(gold)
    r_len = sum(_length(v) for v in r.values())
    g_len = sum(_length(v) for v in g.values())
    inter = sum(_intersection(r[d], g[d]) for d in r.keys() & g.keys())
    union = r_len + g_len - inter
    recall = inter / g_len if g_len else 0.0
    precision = inter / r_len if r_len else 0.0
    iou = inter / union if union else 0.0
    return recall, precision, iou


def reciprocal_rank(ranked: Sequence[Span], gold: Iterable[Span]) -> float:
    """1/rank of the first retrieved span overlapping any gold span (0 if none)."""
    g = _by_doc(gold)
    for rank, (d, s, e) in enumerate(ranked, start=1):
        for gs, ge in g.get(d, ()):
            if s < ge and gs < e:
                return 1.0 / rank
    return 0.0
