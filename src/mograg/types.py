"""Plain data types and the shared vocabulary of mograg (modes, strategies, granularities).

Imported by every layer; cheap to import (no numpy at import time)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from mograg.errors import MogragError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Document:
    """A source document. Its text is stored once; every chunk is a slice of it."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One retrieved span: ``text == document.text[start:end]``."""

    doc_id: str
    start: int
    end: int
    level: int
    score: float
    text: str
    n_tokens: int
    page: int | None = None  # page of ``start`` in a paged source (PDF), else None
    # heading path at ``start`` from the headings / structural labels a loader recorded
    # (PDF: "Q&A > Operator"; mograg.text.context), else None
    section: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI/HTTP contract); ``page`` only for paged sources,
        ``section`` only where a loader recorded headings or labels."""
        out: dict[str, Any] = {
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "level": self.level,
            "score": round(float(self.score), 6),
            "text": self.text,
            "n_tokens": self.n_tokens,
        }
        if self.page is not None:
            out["page"] = self.page
        if self.section:
            out["section"] = self.section
        return out


@dataclass
class SearchResult:
    """The hits for one query plus how they were chosen."""

    query: str
    hits: list[Hit]
    budget: int
    routing: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tokens(self) -> int:
        """Tokens used of the budget."""
        return sum(h.n_tokens for h in self.hits)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"query", "budget", "hits": [...], "routing": {...}}``."""
        out: dict[str, Any] = {
            "query": self.query,
            "budget": self.budget,
            "n_tokens": self.n_tokens,
            "hits": [h.to_dict() for h in self.hits],
        }
        if self.routing:
            out["routing"] = self.routing
        return out


# --------------------------------------------------------------------------- retrieval vocabulary

Mode = Literal["hybrid", "dense", "bm25"]
"""How a level is ranked: dense and BM25 fused by reciprocal rank, or one of them."""
MODES: tuple[Mode, ...] = ("hybrid", "dense", "bm25")

Strategy = Literal["auto", "argmax", "mix", "blend", "spans"]
"""How a router's output becomes a context: the best granularity, MoG tree mixing, blending,
or per-span selection by a span model; ``auto`` = spans wherever a span model serves the
router (the shipped model, a tuned one), else blend."""
WEIGHT_STRATEGIES: tuple[Strategy, ...] = ("argmax", "mix", "blend")
STRATEGIES: tuple[Strategy, ...] = ("auto", *WEIGHT_STRATEGIES, "spans")
# auto: per-span selection with the shipped model measured best leave-one-set-out on the 7 dev
# sets (bench/transfer.py); blend beat argmax for trained and training-free routers on 6 of 7
DEFAULT_STRATEGY: Strategy = "auto"
# the constant of reciprocal-rank fusion: a rank r (0 = best) votes 1 / (RRF_K + r + 1), in
# every level's fusion (retrieval.rank), across levels (retrieval.fusion) and for documents
# (retrieval.doc_prior)
RRF_K = 60

RouterModel = Literal["ridge", "prior", "mlp", "softmax"]
"""What a trained router is: ridge regression (closed form), fixed prior weights, softmax
regression or a one-hidden-layer MLP (the last two need scipy: ``mograg[train]``)."""
ROUTER_MODELS: tuple[RouterModel, ...] = get_args(RouterModel)


def check_mode(mode: str) -> Mode:
    """Validate a retrieval mode name."""
    if mode not in MODES:
        raise MogragError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
    return mode


def check_strategy(strategy: str) -> Strategy:
    """Validate a routing strategy name."""
    if strategy not in STRATEGIES:
        raise MogragError(
            f"unknown strategy {strategy!r}; use one of: {', '.join(STRATEGIES)}"
        )
    return strategy


_GRAPH_RE = re.compile(r"graph:(\d+):r=(\d+)")
_LEVEL_RE = re.compile(r"level:(\d+)")


@dataclass(frozen=True)
class Granularity:
    """One granularity a router can choose: a level (``level:N``) or a level expanded by
    ``radius`` graph hops (``graph:N:r=R``). ``str()`` gives the name; :meth:`parse` reads it.
    """

    size: int
    radius: int = 0  # 0: the level itself

    @property
    def is_graph(self) -> bool:
        """True for a graph expansion (``graph:N:r=R``)."""
        return self.radius > 0

    def __str__(self) -> str:
        return f"graph:{self.size}:r={self.radius}" if self.radius else f"level:{self.size}"

    @classmethod
    def level(cls, size: int) -> Granularity:
        """The granularity of one level."""
        return cls(int(size))

    @classmethod
    def graph(cls, size: int, radius: int) -> Granularity:
        """``radius`` hops of linked context around the chunks of level ``size``."""
        return cls(int(size), int(radius))

    @classmethod
    def parse(cls, name: str) -> Granularity | None:
        """The granularity named ``level:N`` or ``graph:N:r=R``; None for anything else."""
        m = _LEVEL_RE.fullmatch(name)
        if m:
            return cls(int(m.group(1)))
        m = _GRAPH_RE.fullmatch(name)
        if m and int(m.group(2)) > 0:
            return cls(int(m.group(1)), int(m.group(2)))
        return None


@dataclass
class Query:
    """A query with its embedding and BM25 terms, computed once and reused per level."""

    text: str
    vector: np.ndarray
    terms: list[str]
    n_tokens: int = 0
    docs: np.ndarray | None = None  # documents allowed (a --where filter), else all


@dataclass
class LevelRanking:
    """The best chunks of one level for one query.

    ``ids``/``scores`` are the fused ranking (best first); ``dense``/``bm25`` hold the
    raw scores of the same ids (for router features).
    """

    level: int
    ids: np.ndarray
    scores: np.ndarray
    dense: np.ndarray = field(default_factory=lambda: _no_scores())
    bm25: np.ndarray = field(default_factory=lambda: _no_scores())
    # the query's similarity (cosine, not calibrated) to every chunk of the level, when the
    # ranking computed them all (a routed search's one pass over the levels; else None)
    similarities: np.ndarray | None = field(default=None, repr=False, compare=False)


def _no_scores() -> np.ndarray:
    # numpy is imported by whatever builds rankings; `import mograg` itself stays without it
    import numpy as np

    return np.zeros(0, np.float32)


@dataclass(slots=True)  # a search makes hundreds: slots make and read them faster
class Pick:
    """A candidate chunk for assembly: chunk ``chunk`` of level position ``level``."""

    level: int
    chunk: int
    score: float
    linked: bool = False  # reached through the graph (a named document or a link)


@dataclass
class Routing:
    """How a search chose its granularities (``SearchResult.routing``, a JSON contract).

    ``chosen`` always holds granularity names (``level:64``, ``graph:64:r=1``).
    ``strategy`` and ``weights`` are set for routed searches only.
    """

    router: str
    chosen: list[str]
    strategy: str | None = None
    weights: dict[str, float] | None = None
    folded: int = 0  # near-duplicates of other documents' candidates left out

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"router", ["strategy", "weights",] "chosen"[, "folded"]}``
        (``folded`` only when near-duplicates were left out)."""
        out: dict[str, Any] = {"router": self.router}
        if self.strategy is not None:
            out["strategy"] = self.strategy
        if self.weights is not None:
            out["weights"] = self.weights
        out["chosen"] = list(self.chosen)
        if self.folded:
            out["folded"] = self.folded
        return out


Span = tuple[str, int, int]  # (doc_id, start, end), end exclusive


def merge_intervals(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of half-open intervals as sorted, disjoint intervals."""
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]
