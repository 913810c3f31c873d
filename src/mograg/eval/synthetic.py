"""Synthetic questions written from a corpus itself, offline: what `mograg tune` learns from.

A question is a keyword query — the document's title (when it has one) and key words of its
evidence — whose evidence is one sampled sentence (``shape="sentence"``, what ``tune``
writes) or a run of consecutive sentences of one document (``"passage"``): the run starts at
a sampled sentence and grows, sentence by sentence within the document, up to a target size
drawn log-uniformly from ``PASSAGE_TOKENS`` (real questions' evidence ranges from a phrase to
a section). Measured leave-one-set-out (bench/tune_loso.py), passage evidence did not teach
the shipped model more than sentences once the synthetic bias is calibrated away
(:mod:`mograg.eval.tune`), so sentences stay the default.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

import numpy as np

from mograg.eval.questions import Question

if TYPE_CHECKING:
    from mograg.index.core import Index

Shape = Literal["passage", "sentence"]
MIN_SENTENCE_TOKENS = 8
QUERY_WORDS = 6  # key words of a one-sentence question; one more per further sentence
MAX_QUERY_WORDS = 10
# evidence sizes (tokens), log-uniform: the span of real evidence on the dev sets, a short
# sentence to a section; not tuned to any set
PASSAGE_TOKENS = (16, 512)
_WORD = re.compile(r"[^\W_][\w'-]*")
COMMON = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with", "from", "has", "have", "had",
    "were", "been", "which", "who", "whom", "what", "when", "where", "why", "how", "its",
    "his", "her", "he", "she", "we", "you", "your", "our", "can", "could", "would",
    "should", "may", "also", "more", "most", "other", "some", "than", "very", "all", "any",
    "each", "so", "only", "over", "after", "before", "about", "between",
})


def passage_ends(doc: np.ndarray, n_tokens: np.ndarray, starts: np.ndarray,
                 targets: np.ndarray) -> np.ndarray:
    """Last sentence of each run: from ``starts[k]``, consecutive sentences of the same
    document while the run stays within ``targets[k]`` tokens (at least the start itself)."""
    cum = np.concatenate([[0], np.cumsum(n_tokens, dtype=np.int64)])
    doc_end = np.searchsorted(doc, doc[starts], side="right") - 1  # doc's last sentence
    # last b with cum[b + 1] - cum[start] <= target
    last = np.searchsorted(cum, cum[starts] + targets, side="right") - 2
    return np.clip(np.minimum(last, doc_end), starts, None)


def synthetic_questions(index: Index, n: int = 200, seed: int = 0,
                        docs: np.ndarray | None = None,
                        shape: Shape = "sentence") -> list[Question]:
    """Up to ``n`` keyword questions with evidence from the corpus (of the documents in the
    boolean mask ``docs``, default all): a run of sentences (``passage``) or one sentence."""
    snap = index.snapshot
    atoms = snap.atoms
    long_enough = atoms["n_tokens"] >= MIN_SENTENCE_TOKENS
    ok = np.flatnonzero(long_enough if docs is None else long_enough & docs[atoms["doc"]])
    if len(ok) == 0:
        return []
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(ok, size=min(n * 2, len(ok)), replace=False))
    rng.shuffle(chosen)
    if shape == "passage":
        lo, hi = np.log(PASSAGE_TOKENS[0]), np.log(PASSAGE_TOKENS[1])
        targets = np.exp(rng.uniform(lo, hi, size=len(chosen))).astype(np.int64)
        ends = passage_ends(np.asarray(atoms["doc"]), np.asarray(atoms["n_tokens"]),
                            chosen, targets)
    else:
        ends = chosen
    out: list[Question] = []
    for a, b in zip(chosen.tolist(), ends.tolist(), strict=True):
        doc, start, end = int(atoms[a]["doc"]), int(atoms[a]["start"]), int(atoms[b]["end"])
        seen: dict[str, str] = {}
        for w in _WORD.findall(snap.text(doc)[start:end]):
            if w.lower() not in COMMON:
                seen.setdefault(w.lower(), w)
        words = list(seen.values()) if shape == "passage" else [
            w for w in _WORD.findall(snap.text(doc)[start:end]) if w.lower() not in COMMON]
        if len(words) < 3:
            continue
        n_words = min(QUERY_WORDS + (b - a), MAX_QUERY_WORDS, len(words))
        keep = np.sort(rng.choice(len(words), size=n_words, replace=False))
        title = str(snap.metadata(doc).get("title") or "")
        text = " ".join([title, *(words[k] for k in keep.tolist())]).strip()
        out.append(Question(id=f"synthetic-{a}-{b}" if b > a else f"synthetic-{a}",
                            question=text, evidence=[(snap.doc_ids[doc], start, end)]))
        if len(out) == n:
            break
    return out
