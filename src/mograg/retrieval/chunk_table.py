"""Every level's chunks in one numbering, with the facts per-span features read.

Span selection scores ~200 candidates from five levels per query. Reading each level's
tables in turn costs a dozen small array operations per level; numbered together (chunk
``c`` of level ``j`` is row ``offsets[j] + c``) the same facts are one gather each. Built
once per snapshot (a few arrays of one entry per chunk of every level).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mograg.store.snapshot import Snapshot


@dataclass(frozen=True)
class ChunkTable:
    """Per chunk of every level (row ``offsets[j] + c``): its finest chunks
    ``finest_lo:finest_hi``, its document, its tokens, whether it is its document's first
    chunk at its level, the tokens of its cheapest sentence piece and of its cheapest
    finest chunk (all of whose pieces). Positions and counts are int32 where they fit
    (~25 bytes a chunk)."""

    offsets: np.ndarray  # n_levels + 1
    level_size: np.ndarray  # each level's size in tokens (at least 1)
    finest_lo: np.ndarray
    finest_hi: np.ndarray
    doc: np.ndarray
    tokens: np.ndarray
    lead: np.ndarray
    cheapest_piece: np.ndarray
    cheapest_finest: np.ndarray

    def rows(self, levels: np.ndarray, chunks: np.ndarray) -> np.ndarray:
        """The rows of chunks ``chunks`` of level positions ``levels``."""
        return self.offsets[levels] + chunks

    def fill(self, rows: np.ndarray, levels: np.ndarray) -> np.ndarray:
        """Each chunk's tokens over its level's size (float64)."""
        return self.tokens[rows] / self.level_size[levels]


_TABLES: weakref.WeakKeyDictionary[Snapshot, ChunkTable] = weakref.WeakKeyDictionary()


def chunk_table(snap: Snapshot) -> ChunkTable:
    """The snapshot's :class:`ChunkTable` (built on first use)."""
    table = _TABLES.get(snap)
    if table is None:
        table = _TABLES[snap] = _build(snap)
    return table


def _build(snap: Snapshot) -> ChunkTable:
    n_levels = len(snap.levels)
    sizes = [len(lv) for lv in snap.levels]
    offsets = np.zeros(n_levels + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    lo, hi, doc, tok, lead, piece, finest = [], [], [], [], [], [], []
    atom_doc = snap.atoms["doc"]
    totals = snap.token_totals
    # a sentinel past the end, so that every range's end is a valid reduceat index
    tokens = np.append(snap.atoms["n_tokens"].astype(np.int64), 0)
    fine_cost = np.zeros(0, np.int64)  # each finest chunk's tokens (all of its pieces)
    if n_levels:
        fine_first, fine_last = snap.atom_ranges[0]
        fine_cost = totals[np.asarray(fine_last, np.int64) + 1] - totals[fine_first]
    for j, lv in enumerate(snap.levels):
        bounds = snap.finest_bounds(j)
        lo.append(bounds[:-1])
        hi.append(bounds[1:])
        d = atom_doc[lv["first_atom"]]
        doc.append(d)
        tok.append(lv["n_tokens"])
        lead.append(np.arange(sizes[j]) == snap.doc_bounds(j)[d])
        piece.append(_range_min(tokens, lv["first_atom"], lv["last_atom"]))
        finest.append(_range_min(np.append(fine_cost, 0), lo[-1], hi[-1] - 1))
    level_size = np.array([max(s, 1) for s in snap.sizes], np.int64)
    return ChunkTable(offsets, level_size, finest_lo=_compact(lo), finest_hi=_compact(hi),
                      doc=_compact(doc), tokens=_compact(tok),
                      lead=np.concatenate(lead) if lead else np.zeros(0, bool),
                      cheapest_piece=_compact(piece), cheapest_finest=_compact(finest))


def _compact(parts: list[np.ndarray]) -> np.ndarray:
    """The parts as one integer array, int32 where every value fits."""
    if not parts:
        return np.zeros(0, np.int32)
    whole = np.concatenate(parts)
    if len(whole) and (int(whole.max()) >= 2**31 or int(whole.min()) < -(2**31)):
        return whole.astype(np.int64)
    return whole.astype(np.int32)


def _range_min(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``values[first[i]:last[i] + 1].min()`` for every ``i`` (non-empty ranges;
    ``values`` has a sentinel past the last index used)."""
    if not len(first):
        return np.zeros(0, values.dtype)
    bounds = np.empty(2 * len(first), np.int64)
    bounds[0::2] = first
    bounds[1::2] = np.asarray(last, np.int64) + 1
    return np.minimum.reduceat(values, bounds)[0::2]
