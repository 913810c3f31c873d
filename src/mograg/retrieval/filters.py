"""``--where``: restrict a search to documents by their metadata.

A condition is ``KEY=VALUE`` (equal, ignoring case), ``KEY~VALUE`` (contains) or
``KEY^VALUE`` (starts with). Keys are metadata fields (``source``, ``title``, ...),
``id`` and ``period`` (the dates and periods found in the document, mograg.text.context).
All conditions must hold. The mask is applied before ranking, so a filtered search
still fills its budget from the documents that match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mograg.errors import MogragError

__all__ = ["Condition", "doc_mask", "parse_where"]

_COND = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*([=~^])\s*(.*?)\s*$", re.S)
OPS = {"=": "equals", "~": "contains", "^": "starts with"}


@dataclass(frozen=True)
class Condition:
    """One ``KEY op VALUE`` condition."""

    key: str
    op: str
    value: str

    def holds(self, values: Sequence[str]) -> bool:
        """True if any of the field's values satisfies the condition."""
        want = self.value.lower()
        for v in values:
            v = v.lower()
            if (self.op == "=" and v == want) or (self.op == "~" and want in v) or (
                self.op == "^" and v.startswith(want)
            ):
                return True
        return False


def parse_where(conditions: Sequence[str] | None) -> list[Condition]:
    """Parse ``KEY=VALUE`` / ``KEY~VALUE`` / ``KEY^VALUE`` strings.

    Raises:
        MogragError: one line naming the condition and the accepted forms.
    """
    out = []
    for c in conditions or []:
        m = _COND.match(c)
        if m is None or not m.group(3):
            raise MogragError(
                f"invalid --where {c!r}; use KEY=VALUE (equals), KEY~VALUE (contains) or "
                "KEY^VALUE (starts with), e.g. period~2023 or id^reports/"
            )
        out.append(Condition(m.group(1).lower(), m.group(2), m.group(3)))
    return out


def _values(snap: Any, d: int, key: str) -> list[str]:
    if key == "id":
        return [snap.doc_ids[d]]
    meta = snap.metadata(d)
    if key in ("period", "periods", "date"):
        from mograg.text.context import document_context

        return document_context(snap.text(d), meta).periods
    v = meta.get(key)
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, list) else [str(v)]


def doc_mask(snap: Any, conditions: Sequence[Condition]) -> np.ndarray:
    """Boolean mask over the snapshot's documents that meet every condition."""
    mask = np.ones(snap.n_docs, dtype=bool)
    for d in range(snap.n_docs):
        mask[d] = all(c.holds(_values(snap, d, c.key)) for c in conditions)
    return mask
