"""Granularity levels: sentence-snapped windows whose token budgets double per level.

Level 0 packs consecutive sentences ("atoms") of one document into windows of at
most ``sizes[0]`` tokens; level j packs consecutive chunks of level j-1 into windows
of at most ``sizes[j]`` tokens. The levels therefore form a tree over the text (as
in Mix-of-Granularity): every chunk lies inside exactly one chunk of the next level,
and no text is stored per chunk, only atom ranges.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mograg.errors import MogragError

DEFAULT_LEVELS: tuple[int, ...] = (32, 64, 128, 256, 512)

CHUNK_DTYPE = np.dtype(
    [("first_atom", "<i8"), ("last_atom", "<i8"), ("n_tokens", "<i4"), ("parent", "<i8")]
)
ATOM_DTYPE = np.dtype([("doc", "<i8"), ("start", "<i8"), ("end", "<i8"), ("n_tokens", "<i4")])


def parse_levels(value: str | Sequence[int]) -> tuple[int, ...]:
    """Validate level sizes given as ``"32,64,128"`` or a sequence of ints."""
    try:
        if isinstance(value, str):
            sizes = tuple(int(v) for v in value.replace(" ", "").split(",") if v)
        else:
            sizes = tuple(int(v) for v in value)
    except ValueError:
        raise MogragError(
            f"invalid levels {value!r}: give increasing token sizes like 32,64,128,256,512"
        ) from None
    if not sizes or any(s < 4 for s in sizes) or list(sizes) != sorted(set(sizes)):
        raise MogragError(
            f"invalid levels {value!r}: give increasing token sizes >= 4 like 32,64,128,256,512"
        )
    return sizes


def _pack(doc_of: np.ndarray, n_tokens: np.ndarray, limit: int) -> np.ndarray:
    """Group consecutive units of the same document greedily into runs of <= limit tokens.

    Returns the group index of every unit (non-decreasing). A unit larger than the
    limit forms a group of its own.
    """
    n = len(n_tokens)
    group = np.empty(n, dtype=np.int64)
    g = -1
    used = 0
    prev_doc = -1
    docs = doc_of.tolist()
    toks = n_tokens.tolist()
    for i in range(n):
        t = toks[i]
        if docs[i] != prev_doc or used + t > limit or g < 0:
            g += 1
            used = 0
            prev_doc = docs[i]
        used += t
        group[i] = g
    return group


def build_levels(atoms: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """Chunk arrays (``CHUNK_DTYPE``) for every level over the given atoms.

    ``atoms`` is an ``ATOM_DTYPE`` array sorted by (doc, start). The ``parent`` field
    of the top level is -1.
    """
    levels: list[np.ndarray] = []
    unit_doc = atoms["doc"]
    unit_tokens = atoms["n_tokens"].astype(np.int64)
    unit_first = np.arange(len(atoms), dtype=np.int64)
    unit_last = unit_first.copy()
    prev: np.ndarray | None = None
    for size in sizes:
        group = _pack(unit_doc, unit_tokens, size)
        n_groups = int(group[-1]) + 1 if len(group) else 0
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(group) else group
        chunks = np.zeros(n_groups, dtype=CHUNK_DTYPE)
        chunks["first_atom"] = unit_first[starts]
        ends = np.r_[starts[1:], len(group)] - 1 if len(group) else group
        chunks["last_atom"] = unit_last[ends]
        chunks["n_tokens"] = np.add.reduceat(unit_tokens, starts) if len(group) else 0
        chunks["parent"] = -1
        if prev is not None:
            prev["parent"] = group
        levels.append(chunks)
        prev = chunks
        unit_doc = unit_doc[starts] if len(group) else unit_doc
        unit_tokens = chunks["n_tokens"].astype(np.int64)
        unit_first = chunks["first_atom"]
        unit_last = chunks["last_atom"]
    return levels


def children_ranges(levels: Sequence[np.ndarray]) -> list[np.ndarray]:
    """For each level j > 0, an array ``r`` with children of chunk c = ``r[c]:r[c+1]`` at j-1.

    Index 0 of the result is an empty array (level 0 has no children).
    """
    out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    for j in range(1, len(levels)):
        parents = levels[j - 1]["parent"]
        out.append(np.searchsorted(parents, np.arange(len(levels[j]) + 1), side="left"))
    return out
