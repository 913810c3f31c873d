"""The extractive generator: no language model, the best-matching retrieved sentences quoted."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mograg.answer.prompt import Messages, Source
from mograg.embed.base import calibrate_cosine, cosine_floor, embed_queries
from mograg.store.lexical import tokenize
from mograg.text.segment import split_sentences

if TYPE_CHECKING:
    from mograg.embed.base import Embedder

EXTRACTIVE_NOTE = (
    "Extractive answer (no language model was used; these sentences are quoted from the "
    "sources):"
)
EXTRACTIVE_NOT_FOUND = (
    "Not found in the sources: no retrieved sentence matches the question "
    "(extractive answer; no language model was used)."
)
_HEADER = re.compile(r"^\[(\d+)\] (?:.* — )?(.+) \((\d+)–(\d+)\)$")


class ExtractiveGenerator:
    """No language model: the retrieved sentences that best match the question, quoted.

    Sentences are scored by the share of the question's terms they contain (BM25 terms:
    stemmed, stopwords removed) and, when an embedder is available, by cosine similarity to
    the question. If no sentence matches, the answer says it is not found in the sources.
    """

    name = "extractive"
    context_tokens = 0  # no model, no window: all retrieved sources are read
    max_tokens = 0

    def __init__(self, max_sentences: int = 3, embedder: Embedder | None = None,
                 min_lexical: float = 0.34, min_dense: float = 0.55,
                 relative: float = 0.75) -> None:
        self.max_sentences = max_sentences
        self.embedder = embedder
        self.min_lexical = min_lexical
        self.min_dense = min_dense
        self.relative = relative

    def extract(
        self, question: str, sources: Sequence[Source], embedder: Embedder | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """The extractive answer and its citations (each quoted sentence is one citation)."""
        cands: list[tuple[Source, int, int, str]] = []
        for s in sources:
            for a, b in split_sentences(s.text, 512):
                text = s.text[a:b]
                if any(c.isalnum() for c in text):
                    cands.append((s, s.start + a, s.start + b, text))
        if not cands:
            return EXTRACTIVE_NOT_FOUND, []
        q_terms = set(tokenize([question])[0])
        s_terms = tokenize([c[3] for c in cands])
        lex = np.array([len(q_terms & set(t)) / len(q_terms) if q_terms else 0.0
                        for t in s_terms])
        emb = embedder or self.embedder
        dense = np.zeros(len(cands))
        if emb is not None:
            qvec = embed_queries(emb, [question])[0]
            cos = emb.embed([c[3] for c in cands]) @ qvec
            floor = cosine_floor(emb.name)  # the thresholds are on MiniLM's cosine scale
            dense = np.clip(calibrate_cosine(cos, floor), 0.0, 1.0).astype(np.float64)
        rank_prior = np.array([0.02 / c[0].n for c in cands])
        score = 0.6 * lex + 0.4 * dense + rank_prior
        relevant = (lex >= self.min_lexical) | (dense >= self.min_dense) | \
            ((lex > 0) & (dense >= 0.8 * self.min_dense))
        order = [int(i) for i in np.argsort(-score, kind="stable") if relevant[i]]
        if not order:
            return EXTRACTIVE_NOT_FOUND, []
        best = score[order[0]]
        picked = [i for i in order if score[i] >= self.relative * best][: self.max_sentences]
        citations, lines = [], []
        for n, i in enumerate(picked, start=1):
            src, a, b, text = cands[i]
            citations.append({"n": n, "doc_id": src.doc_id, "start": a, "end": b, "text": text})
            lines.append(f"{' '.join(text.split())} [{n}]")
        return EXTRACTIVE_NOTE + "\n" + "\n".join(lines), citations

    def generate(
        self, prompt_messages: Messages, stream: bool = False, usage: dict[str, Any] | None = None
    ) -> Iterator[str] | str:
        """Answer a prompt made by :func:`build_messages` (citing its source numbers)."""
        question, sources = _parse_prompt(prompt_messages)
        text, cites = self.extract(question, sources)
        # renumber to the prompt's sources: [k] -> the source the k-th sentence came from
        for c in cites:
            src = next(s for s in sources if s.start <= c["start"] and c["end"] <= s.end
                       and s.doc_id == c["doc_id"])
            text = text.replace(f"[{c['n']}]", f"[#{src.n}]", 1)
        text = text.replace("[#", "[")
        if usage is not None:
            usage.update(prompt_tokens=0, completion_tokens=0)
        return iter([text]) if stream else text


def _parse_prompt(messages: Messages) -> tuple[str, list[Source]]:
    """Question and sources back from the user message of :func:`build_messages`."""
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    head, _, rest = user.rpartition("\n\nQuestion: ")
    question = rest.split("\n\n", 1)[0]
    sources: list[Source] = []
    lines = head.split("\n")
    i = 0
    while i < len(lines):
        m = _HEADER.match(lines[i])
        if m:
            j = i + 1
            while j < len(lines) and not _HEADER.match(lines[j]):
                j += 1
            text = "\n".join(lines[i + 1 : j]).strip("\n")
            n, doc, a, b = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
            sources.append(Source(n, doc, a, b, text, "", 0, 0.0, 0))
            i = j
        else:
            i += 1
    return question, sources
