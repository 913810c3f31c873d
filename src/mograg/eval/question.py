"""One evaluation question (shared by the eval-set and question/answer file readers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mograg.types import Span

__all__ = ["Question"]


@dataclass
class Question:
    """``{"id", "question", "answers", "evidence": [{"doc_id","start","end"}], "metadata"}``."""

    id: str
    question: str
    answers: list[str] = field(default_factory=list)
    evidence: list[Span] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
