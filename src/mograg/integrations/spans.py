"""What every adapter returns for one search: exact spans with their provenance.

The framework adapters (LlamaIndex, LangChain, MCP) differ only in the object they wrap a
span in; the search options, the index opening and the metadata they carry live here.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mograg.types import Hit, SearchResult

if TYPE_CHECKING:
    from mograg.index.core import Index



def open_index(index: str | os.PathLike[str] | Index) -> Index:
    """An open :class:`~mograg.index.Index` from a path or an already open one."""
    from mograg.index.core import Index

    if isinstance(index, Index):
        return index
    if isinstance(index, (str, os.PathLike)):
        return Index.open(Path(index))
    raise TypeError(f"index must be a path or a mograg Index, not {type(index).__name__}")


@dataclass(frozen=True)
class SearchOptions:
    """The arguments of :meth:`Index.search` an adapter passes on every query.

    Attributes:
        budget: tokens of context to return per query.
        mode: ``hybrid`` (dense + BM25), ``dense`` or ``bm25``.
        router: router name, ``entropy``, ``level:N`` or ``graph:N:r=R`` (default: the
            index's own).
        strategy: how router weights are used: ``blend``, ``argmax`` or ``mix``.
        level: search one granularity only (a level size in tokens).
    """

    budget: int = 256
    mode: str = "hybrid"
    router: str | None = None
    strategy: str = "blend"
    level: int | None = None

    def search(self, index: Index, query: str) -> SearchResult:
        """Run one search with these options."""
        return index.search(
            query, budget=self.budget, level=self.level, mode=self.mode,
            router=self.router, strategy=self.strategy,
        )


def page_of(metadata: dict[str, Any], start: int) -> int | None:
    """1-based page holding character ``start``, when the document records its pages.

    A PDF document's metadata carries ``page_starts`` (the character offset where each
    page begins in its text); other documents may carry a single ``page``.
    """
    starts = metadata.get("page_starts")
    if isinstance(starts, list) and starts:
        return max(1, bisect_right(starts, start))
    page = metadata.get("page")
    return page if isinstance(page, int) else None


def span_metadata(index: Index, hit: Hit, routing: dict[str, Any]) -> dict[str, Any]:
    """Metadata of one retrieved span: where it is, how it was chosen, its document's fields.

    Keys: ``doc_id``, ``start``, ``end`` (character offsets into the document text, end
    exclusive), ``level`` (chunk size in tokens), ``score``, ``n_tokens``, ``page`` and
    ``section`` (only when known), ``title``/``source`` (when the document has them) and
    ``routing`` (the router's decision for the whole query).
    """
    snap = index.snapshot
    doc_meta = snap.metadata(snap.doc_index[hit.doc_id]) if hit.doc_id in snap.doc_index else {}
    out: dict[str, Any] = {
        "doc_id": hit.doc_id,
        "start": hit.start,
        "end": hit.end,
        "level": hit.level,
        "score": float(hit.score),
        "n_tokens": hit.n_tokens,
    }
    page = page_of(doc_meta, hit.start)
    if page is not None:
        out["page"] = page
    if hit.section:
        out["section"] = hit.section
    for key in ("title", "source", "url"):
        value = doc_meta.get(key)
        if isinstance(value, str):
            out[key] = value
    out["routing"] = dict(routing)
    return out


def span_id(hit: Hit) -> str:
    """A stable id for a span: ``doc_id:start-end``."""
    return f"{hit.doc_id}:{hit.start}-{hit.end}"
