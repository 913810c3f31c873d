"""Plain data types shared across mograg."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the CLI/HTTP contract)."""
        return {
            "doc_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "level": self.level,
            "score": round(float(self.score), 6),
            "text": self.text,
            "n_tokens": self.n_tokens,
        }


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
