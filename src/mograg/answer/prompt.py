"""Prompting with numbered sources: building the chat messages and fitting them to a
model's context window (dropping the lowest-ranked sources, then shortening the best)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from mograg.errors import MogragError
from mograg.text.segment import split_sentences
from mograg.text.tokens import count_tokens, token_char_offsets

if TYPE_CHECKING:
    from mograg.index.core import Index
    from mograg.types import SearchResult

Messages = list[dict[str, str]]

NOT_FOUND = "not found in the sources"
SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources given by the user. "
    "After each statement, cite the source it comes from by its number in square brackets, "
    "like [1] or [2][3]. Do not use any outside knowledge. If the sources do not contain the "
    f"answer, reply exactly: {NOT_FOUND}. Answer briefly."
)
DEFAULT_OPENAI_CONTEXT = 4096
# mograg counts WordPieces; model tokenizers differ, so estimates carry a safety margin
ESTIMATE_FACTOR = 1.25
MESSAGE_OVERHEAD = 8


@dataclass(frozen=True)
class Source:
    """One numbered source shown to the model: an exact span of a document."""

    n: int
    doc_id: str
    start: int
    end: int
    text: str
    title: str
    level: int
    score: float
    n_tokens: int

    def header(self) -> str:
        """``[n] title — doc_id (start–end)`` (the title is left out when it is the id)."""
        label = f"{self.title} — {self.doc_id}" if self.title and self.title != self.doc_id \
            else self.doc_id
        return f"[{self.n}] {label} ({self.start}–{self.end})"

    def citation(self) -> dict[str, Any]:
        """The citation object of the answer JSON."""
        return {"n": self.n, "doc_id": self.doc_id, "start": self.start, "end": self.end,
                "text": self.text}


def sources_from(index: Index, result: SearchResult) -> list[Source]:
    """The hits of a search as numbered sources, best first, with document titles."""
    snap = index.snapshot
    out = []
    for n, h in enumerate(result.hits, start=1):
        meta = snap.metadata(snap.doc_index[h.doc_id]) if h.doc_id in snap.doc_index else {}
        title = meta.get("title") if isinstance(meta, dict) else None
        out.append(Source(n, h.doc_id, h.start, h.end, h.text, str(title or ""), h.level,
                          float(h.score), h.n_tokens))
    return out


def build_messages(question: str, sources: Sequence[Source]) -> Messages:
    """System instructions plus one user message with the numbered sources and the question."""
    blocks = [f"{s.header()}\n{s.text}" for s in sources]
    body = "\n\n".join(blocks) if blocks else "(no sources)"
    user = (
        f"Sources:\n\n{body}\n\n"
        f"Question: {question}\n\n"
        "Answer using only the sources above and cite them as [n]. "
        f"If they do not contain the answer, say: {NOT_FOUND}."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def estimate_tokens(messages: Messages) -> int:
    """A safe over-estimate of a chat prompt's length in model tokens."""
    counts = count_tokens([m["content"] for m in messages])
    return math.ceil(sum(counts) * ESTIMATE_FACTOR) + MESSAGE_OVERHEAD * (len(messages) + 1)


def prompt_tokens(generator: Any, messages: Messages) -> int:
    """Prompt length with the generator's own tokenizer if it has one, else an estimate."""
    counter = getattr(generator, "count_prompt_tokens", None)
    if callable(counter):
        return int(counter(messages))
    return estimate_tokens(messages)


def _shorten(source: Source, max_tokens: int) -> Source | None:
    """``source`` cut to about ``max_tokens`` WordPieces at a sentence end (still a span)."""
    if max_tokens < 8:
        return None
    offsets = token_char_offsets(source.text)
    if len(offsets) <= max_tokens:
        return source
    cut = offsets[max_tokens - 1][1]
    text = source.text[:cut]
    ends = [e for _, e in split_sentences(text, 10**6)]
    if len(ends) > 1:
        cut = ends[-2] if ends[-1] == len(text) and not text.rstrip().endswith((".", "!", "?")) \
            else ends[-1]
    text = source.text[:cut].rstrip()
    if not text:
        return None
    return replace(source, text=text, end=source.start + len(text),
                   n_tokens=count_tokens([text])[0])


def fit_sources(
    question: str, sources: Sequence[Source], generator: Any, reserve: int | None = None
) -> tuple[list[Source], int]:
    """The best-ranked sources whose prompt fits the generator's context window.

    The lowest-ranked sources are dropped first; if even the best one does not fit, it is
    shortened (at a sentence end, keeping an exact document span).

    Args:
        question: the question.
        sources: sources, best first.
        generator: gives ``context_tokens`` (and optionally ``max_tokens`` and
            ``count_prompt_tokens``).
        reserve: tokens kept free for the answer (default the generator's ``max_tokens``).

    Returns:
        ``(kept sources, number dropped)``.
    """
    window = int(getattr(generator, "context_tokens", DEFAULT_OPENAI_CONTEXT))
    reserve = int(getattr(generator, "max_tokens", 256) if reserve is None else reserve)
    limit = window - reserve
    empty = prompt_tokens(generator, build_messages(question, []))
    if empty > limit:
        raise MogragError(
            f"the question alone needs about {empty} tokens but the model's context is {window} "
            f"with {reserve} kept for the answer; raise context_tokens or shorten the question"
        )
    kept = list(sources)
    while kept and prompt_tokens(generator, build_messages(question, kept)) > limit:
        if len(kept) > 1:
            kept.pop()
            continue
        spare = limit - empty
        factor = ESTIMATE_FACTOR if not callable(getattr(generator, "count_prompt_tokens", None)) \
            else 1.0
        target = int((spare - 24) / factor)
        shorter = _shorten(kept[0], target)
        while shorter is not None and \
                prompt_tokens(generator, build_messages(question, [shorter])) > limit:
            target = int(target * 0.8)
            shorter = _shorten(kept[0], target)
        kept = [shorter] if shorter is not None else []
        break
    return kept, len(sources) - len(kept)

